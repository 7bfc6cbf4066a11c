import { expect } from "chai";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

// The core must be a pure function of its commands: no clock, no randomness, no I/O.
// (nautilus_trader enforces the same on its deterministic path with a check like this one.)
const dir = fileURLToPath(new URL("../../keeper/core/", import.meta.url));
const banned: [RegExp, string][] = [
  [/Date\.now|new Date\b|performance\.now|process\.hrtime/, "a clock"],
  [/Math\.random|crypto\.random|randomUUID|randomBytes/, "randomness"],
  [/setTimeout|setInterval|setImmediate|queueMicrotask/, "timers"],
  [/\bprocess\.(env|argv|stdout|stderr)/, "the process environment"],
  [/from "node:(?!crypto")|require\(/, "an I/O module"],
  [/\bawait\b|\basync\b/, "asynchrony"],
];

describe("keeper/core purity", () => {
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".ts"))) {
    it(`${file} uses no clock, randomness or I/O`, () => {
      const code = readFileSync(dir + file, "utf8").replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");
      for (const [re, what] of banned) expect(re.test(code), `${file} uses ${what}`).to.equal(false);
      if (file !== "state-hash.ts") expect(code.includes('"node:crypto"'), `${file} imports node:crypto`).to.equal(false);
    });
  }
});
