// `npm run audit -- --watch`: the watchtower's command line (the loop is scripts/audit/watch.ts).
//
//   npm run audit -- --watch [--graphql URL] [--rpc URL] [--fill-log URL-or-path-with-{session}]
//                            [--guardian-keystore NAME] [--vault 0x…] [--from N] [--sessions N]
//                            [--poll-ms MS] [--veto-margin SEC]
//
// The guardian's key comes from CME_GUARDIAN_KEY or the Hardhat keystore (--guardian-keystore
// NAME: `npx hardhat keystore set NAME`); it needs --rpc (or CME_RPC_URL). Without a key the
// watchtower only reports. The fill log of session N is fetched from --fill-log with {session}
// replaced by N, by default $CME_KEEPER_URL/api/sessions/{session}/fill-log.
//
// Prints one line per session verdict on stdout (progress and retries on stderr). Runs until
// SIGINT or SIGTERM (or --sessions verdicts); exits 0 if every session passed, 1 if any failed
// (vetoed or not), 2 on a usage or startup error.
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { getAddress, isAddress, type Hex } from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { watch, type WatchOptions } from "./watch.ts";

export const WATCH_USAGE =
  "usage: npm run audit -- --watch [--graphql URL] [--rpc URL] [--fill-log URL-or-path-with-{session}] " +
  "[--guardian-keystore NAME] [--vault 0x…] [--from N] [--sessions N] [--poll-ms MS] [--veto-margin SEC]";

class UsageError extends Error {
  override readonly name = "UsageError";
}

type WatchArgs = Omit<WatchOptions, "signal" | "onVerdict" | "onLog" | "guardian"> & {
  keystore: string | undefined;
  sessions: number | undefined;
};

function positive(name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) throw new UsageError(`--${name} must be a whole number >= ${min}`);
  return Number(value);
}

function parseWatchArgs(argv: string[], env: NodeJS.ProcessEnv): WatchArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        watch: { type: "boolean" },
        graphql: { type: "string" },
        rpc: { type: "string" },
        "fill-log": { type: "string" },
        "guardian-keystore": { type: "string" },
        vault: { type: "string" },
        from: { type: "string" },
        sessions: { type: "string" },
        "poll-ms": { type: "string" },
        "veto-margin": { type: "string" },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const keeper = (env.CME_KEEPER_URL ?? "http://127.0.0.1:8787").replace(/\/$/, "");
  const template = values["fill-log"] ?? `${keeper}/api/sessions/{session}/fill-log`;
  if (!template.includes("{session}")) throw new UsageError("--fill-log must contain {session} in watch mode (replaced by each session id)");
  if (values.vault !== undefined && !isAddress(values.vault)) throw new UsageError(`--vault is not an address: ${values.vault}`);
  const rpc = values.rpc ?? (env.CME_RPC_URL || undefined);
  const args: WatchArgs = {
    graphqlUrl: values.graphql ?? env.CME_GRAPHQL_URL ?? "http://127.0.0.1:42069/graphql",
    fillLogUrlFor: (sessionId) => template.replaceAll("{session}", String(sessionId)),
    keystore: values["guardian-keystore"],
    sessions: positive("sessions", values.sessions),
  };
  if (rpc !== undefined) args.rpcUrl = rpc;
  if (values.vault !== undefined) args.vault = getAddress(values.vault);
  const from = positive("from", values.from);
  if (from !== undefined) args.fromSession = from;
  const pollMs = positive("poll-ms", values["poll-ms"], 10);
  if (pollMs !== undefined) args.pollMs = pollMs;
  const margin = positive("veto-margin", values["veto-margin"], 0);
  if (margin !== undefined) args.vetoMarginSec = margin;
  return args;
}

/** Reads a private key from the Hardhat keystore (prompts for its password on the terminal). */
function keyFromKeystore(name: string): string {
  return execFileSync("npx", ["hardhat", "keystore", "get", name], { stdio: ["inherit", "pipe", "inherit"] }).toString().trim();
}

function guardianAccount(args: WatchArgs, env: NodeJS.ProcessEnv): PrivateKeyAccount | undefined {
  let key = env.CME_GUARDIAN_KEY || undefined;
  if (key === undefined && args.keystore !== undefined) key = keyFromKeystore(args.keystore);
  if (key === undefined) return undefined;
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw new UsageError("the guardian key (CME_GUARDIAN_KEY or --guardian-keystore) must be a 0x-prefixed 32-byte hex key");
  if (args.rpcUrl === undefined) throw new UsageError("a guardian key needs --rpc (or CME_RPC_URL) to send its veto");
  return privateKeyToAccount(key as Hex);
}

const stamp = () => new Date().toISOString();

/** Runs the watchtower until a signal (or --sessions verdicts); returns the exit code. */
export async function runWatch(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: WatchArgs;
  let guardian: PrivateKeyAccount | undefined;
  try {
    args = parseWatchArgs(argv, env);
    guardian = guardianAccount(args, env);
  } catch (error) {
    console.error(`audit --watch: ${(error as Error).message}`);
    console.error(WATCH_USAGE);
    return 2;
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let seen = 0;
  const { keystore: _keystore, sessions, ...options } = args;
  const guardianNote = guardian === undefined ? "no guardian key: reporting only" : `guardian ${guardian.address}`;
  console.error(`${stamp()} watching ${args.graphqlUrl}${args.rpcUrl === undefined ? " (no RPC: trusting the indexer)" : ` and the vault at ${args.rpcUrl}`}; ${guardianNote}`);
  try {
    const summary = await watch({
      ...options,
      ...(guardian === undefined ? {} : { guardian }),
      signal: stop.signal,
      onVerdict: (v) => {
        console.log(`${stamp()} ${v.line}`);
        if (sessions !== undefined && ++seen >= sessions) stop.abort();
      },
      onLog: (line) => console.error(`${stamp()} ${line}`),
    });
    console.error(`${stamp()} stopped: ${summary.verdicts} sessions, ${summary.passed} passed, ${summary.failed} failed, ${summary.vetoed} vetoed`);
    return summary.failed > 0 ? 1 : 0;
  } catch (error) {
    // watch() throws only at startup, for what waiting cannot fix (two vaults indexed, the wrong
    // vault or chain, a guardian without the role); an indexer or RPC not up yet is waited for.
    console.error(`audit --watch: cannot start: ${(error as Error).message.split("\n")[0]}`);
    return 2;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
