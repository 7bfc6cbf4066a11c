// Replay: a session is its ordered list of commands. Applying the journal to a fresh engine
// (or to one restored from a snapshot taken along the way) rebuilds the identical state,
// which the state hash makes checkable.

import type { Command } from "./commands.ts";
import { Engine, type EngineOptions, type EngineSnapshot } from "./engine.ts";
import { InvariantError } from "./errors.ts";
import type { CommandResult, EngineConfig } from "./types.ts";

export interface ReplayOutcome {
  readonly engine: Engine;
  readonly results: CommandResult[];
}

/** Applies `commands` in order to a fresh engine. */
export function replay(config: EngineConfig, commands: Iterable<Command>, options: EngineOptions = {}): ReplayOutcome {
  return continueFrom(new Engine(config, options), commands);
}

/** Restores `snapshot` and applies the commands after it (those with seq > snapshot.lastSeq). */
export function replayFrom(snapshot: EngineSnapshot, commands: Iterable<Command>, options: EngineOptions = {}): ReplayOutcome {
  const engine = Engine.restore(snapshot, options);
  const after: Command[] = [];
  for (const c of commands) if (c.seq > snapshot.lastSeq) after.push(c);
  return continueFrom(engine, after);
}

function continueFrom(engine: Engine, commands: Iterable<Command>): ReplayOutcome {
  const results: CommandResult[] = [];
  for (const cmd of commands) results.push(engine.apply(cmd));
  return { engine, results };
}

/** Replays and throws InvariantError unless the final state hash is `expectedHash`. */
export function verifyReplay(config: EngineConfig, commands: Iterable<Command>, expectedHash: string, options: EngineOptions = {}): Engine {
  const { engine } = replay(config, commands, options);
  const hash = engine.stateHash();
  if (hash !== expectedHash) throw new InvariantError("replay diverged from the recorded state", { expected: expectedHash, actual: hash });
  return engine;
}
