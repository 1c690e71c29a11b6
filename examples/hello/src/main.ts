/**
 * The smallest appliance: greets, waits a moment on the image's own scheduler, and exits with a
 * status it chooses (`atoll run dist/hello.atoll -- --exit 3` exits 3).
 */
import { sleep, type Appliance } from "atoll";

export default async function main(app: Appliance): Promise<number> {
  const exitFlag = app.args.indexOf("--exit");
  const status = exitFlag === -1 ? 0 : Number(app.args[exitFlag + 1]);
  if (!Number.isInteger(status) || status < 0 || status > 255) {
    app.log.error(`--exit takes a status from 0 to 255, not ${JSON.stringify(app.args[exitFlag + 1])}`);
    return 2;
  }
  const who = app.args.find((arg, index) => !arg.startsWith("--") && app.args[index - 1] !== "--exit") ?? "world";
  console.log(`Hello, ${who}! (from an Atoll appliance)`);
  await sleep(1);
  app.log.info(`exiting with status ${status}`);
  return status;
}
