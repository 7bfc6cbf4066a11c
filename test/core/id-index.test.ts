import { expect } from "chai";
import { IdIndex } from "../../keeper/core/id-index.ts";
import { Prng } from "../../keeper/core/prng.ts";

describe("IdIndex", () => {
  it("behaves like a Map under random inserts, overwrites and deletes (with growth)", () => {
    const rng = new Prng(5);
    const idx = new IdIndex(4);
    const ref = new Map<number, number>();
    const keys: number[] = [];
    for (let step = 0; step < 50_000; step++) {
      const r = rng.next();
      if (r < 0.5) {
        // sequential-ish, negative and large ids collide in the low bits on purpose
        const id = rng.pick([step, -step * 1024 - 3, 2 ** 40 + step * 65_536, rng.int(0, 300)]);
        const v = rng.int(0, 1_000_000);
        idx.set(id, v);
        ref.set(id, v);
        keys.push(id);
      } else if (keys.length > 0) {
        const id = rng.pick(keys);
        expect(idx.delete(id)).to.equal(ref.delete(id));
      }
      if (step % 1000 === 0) {
        const wrong = keys.filter((k) => idx.get(k) !== (ref.get(k) ?? -1));
        expect(wrong, `step ${step}`).to.deep.equal([]);
        expect(idx.size).to.equal(ref.size);
      }
    }
    for (const [k, v] of ref) expect(idx.get(k)).to.equal(v);
    expect(idx.has(123_456_789)).to.equal(ref.has(123_456_789));
  });
});
