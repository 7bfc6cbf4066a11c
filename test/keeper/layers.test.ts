// The keeper's folders are its architecture: each may import only the folders below it, so data
// flows one way (api -> session -> core, settlement -> chain) and events flow back out by
// subscription, never by an import running up. The composition root (keeper/keeper.ts, with its
// configuration) is the one place that sees everything.
import { expect } from "chai";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const KEEPER = fileURLToPath(new URL("../../keeper/", import.meta.url));

/** folder -> the folders its modules may import (besides their own). */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  auth: [],
  ops: [],
  store: ["core"],
  stream: [],
  chain: ["store", "ops"],
  brokers: ["core"],
  executor: ["brokers", "core"],
  settlement: ["core", "chain", "store"],
  session: ["core", "brokers", "executor", "settlement", "chain", "store", "ops"],
  api: ["session", "settlement", "chain", "store", "stream", "auth", "ops", "core", "brokers", "executor"],
};
/** The composition root: keeper/*.ts itself. */
const ROOT = ".";

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

function folderOf(path: string): string {
  const rel = relative(KEEPER, path);
  return rel.includes("/") ? rel.split("/")[0]! : ROOT;
}

function imports(path: string): string[] {
  const src = readFileSync(path, "utf8");
  const out: string[] = [];
  for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/g)) out.push(m[1]!);
  for (const m of src.matchAll(/import\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g)) out.push(m[1]!);
  return out;
}

describe("keeper layers", () => {
  const all = files(KEEPER);

  it("has only the composition root and its configuration at keeper/", () => {
    const loose = all.filter((f) => folderOf(f) === ROOT).map((f) => relative(KEEPER, f)).sort();
    expect(loose).to.deep.equal(["config.ts", "keeper.ts"]);
  });

  it("puts every module in a folder the layer table knows", () => {
    const unknown = [...new Set(all.map(folderOf))].filter((f) => f !== ROOT && ALLOWED[f] === undefined);
    expect(unknown).to.deep.equal([]);
  });

  it("never imports up: each folder only from the folders below it", () => {
    const violations: string[] = [];
    for (const file of all) {
      const from = folderOf(file);
      if (from === ROOT) continue;
      for (const spec of imports(file)) {
        const target = resolve(dirname(file), spec);
        if (!target.startsWith(KEEPER)) {
          violations.push(`${relative(KEEPER, file)} imports ${spec}, outside keeper/`);
          continue;
        }
        const to = folderOf(target);
        if (to === from) continue;
        if (to === ROOT || !ALLOWED[from]!.includes(to)) violations.push(`${relative(KEEPER, file)} (${from}) imports ${relative(KEEPER, target)} (${to})`);
      }
    }
    expect(violations).to.deep.equal([]);
  });

  it("has no cycle between folders", () => {
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (f: string, path: string[]): void => {
      if (done.has(f)) return;
      expect(visiting.has(f), `cycle ${[...path, f].join(" -> ")}`).to.equal(false);
      visiting.add(f);
      for (const g of ALLOWED[f]!) visit(g, [...path, f]);
      visiting.delete(f);
      done.add(f);
    };
    for (const f of Object.keys(ALLOWED)) visit(f, []);
  });
});
