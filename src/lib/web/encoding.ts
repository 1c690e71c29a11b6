/**
 * TextEncoder and TextDecoder live in the runtime (src/lib/runtime/encoding.ts), because boot
 * installs them as globals in every image; atoll/web re-exports them with the other web classes.
 */
export { TextDecoder, TextEncoder, decodeUtf8Text, type TextDecoderOptions, type TextDecodeOptions, type TextEncoderEncodeIntoResult } from "../runtime/encoding.ts";
