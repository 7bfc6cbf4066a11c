// Starts the keeper from its configuration (environment variables, see keeper/config.ts):
//   npm run keeper
// Stops cleanly on SIGINT/SIGTERM; a restart resumes the session from its database.
import { loadConfig, ConfigError } from "../keeper/config.ts";
import { createKeeper } from "../keeper/keeper.ts";
import { listen } from "../keeper/api/server.ts";
import { StorageError } from "../keeper/store/database.ts";
import { JournalGapError } from "../keeper/session/pit.ts";

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(2);
  }
  throw err;
}
const keeper = await createKeeper(config);
try {
  await keeper.start();
} catch (err) {
  // A journal with a hole or a database that cannot be written needs the operator: say what to
  // do and stop, rather than retry the same failure forever.
  if (err instanceof JournalGapError || err instanceof StorageError) {
    console.error(err.message);
    process.exit(70);
  }
  throw err;
}
const url = await listen(keeper);
keeper.app.log.info({ url, docs: `${url}/docs`, sessionId: keeper.runner.current.id, phase: keeper.runner.current.phase }, "keeper listening");

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  keeper.app.log.info({ signal }, "keeper stopping");
  await keeper.stop();
  process.exit(0);
};
process.on("SIGINT", () => void stop("SIGINT"));
process.on("SIGTERM", () => void stop("SIGTERM"));
