/**
 * Installs the web globals (Request, Response, Headers, URL, TextEncoder, streams...) that Hono
 * expects. ES modules evaluate in import order, depth first, so main.ts imports this module
 * before it imports "hono" or the app: the globals exist before any of Hono's code runs.
 */
import { installWebGlobals } from "atoll/web";

installWebGlobals();
