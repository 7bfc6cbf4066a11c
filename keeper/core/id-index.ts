// order id -> pool slot, as an open-addressing hash table in typed arrays (linear probing,
// backward-shift deletion, so no tombstones). A JS Map would do, but under a steady stream of
// inserts and deletes it keeps rehashing into fresh backing stores that land in old space and
// cost mark-compact pauses; this table allocates only when it doubles.

const EMPTY = -Infinity;

export class IdIndex {
  private keys: Float64Array;
  private vals: Int32Array;
  private mask: number;
  private count = 0;

  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Ids are safe integers (possibly negative); mixes both 32-bit halves. */
  private slot(id: number): number {
    const lo = id | 0;
    const hi = (id / 4294967296) | 0;
    return Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1) >>> 0 & this.mask;
  }

  /** The value stored for id, or -1. */
  get(id: number): number {
    const keys = this.keys;
    let i = this.slot(id);
    for (;;) {
      const k = keys[i]!;
      if (k === id) return this.vals[i]!;
      if (k === EMPTY) return -1;
      i = (i + 1) & this.mask;
    }
  }

  has(id: number): boolean {
    return this.get(id) !== -1;
  }

  /** Inserts or overwrites. */
  set(id: number, value: number): void {
    if ((this.count + 1) * 2 > this.keys.length) this.grow();
    const keys = this.keys;
    let i = this.slot(id);
    for (;;) {
      const k = keys[i]!;
      if (k === EMPTY) {
        keys[i] = id;
        this.vals[i] = value;
        this.count++;
        return;
      }
      if (k === id) {
        this.vals[i] = value;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  delete(id: number): boolean {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    let i = this.slot(id);
    for (;;) {
      const k = keys[i]!;
      if (k === EMPTY) return false;
      if (k === id) break;
      i = (i + 1) & mask;
    }
    // Backward shift: pull later entries of the probe run into the hole when their home slot
    // does not lie cyclically in (hole, j].
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const k = keys[j]!;
      if (k === EMPTY) break;
      const home = this.slot(k);
      const between = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (between) continue;
      keys[hole] = k;
      vals[hole] = vals[j]!;
      hole = j;
    }
    keys[hole] = EMPTY;
    this.count--;
    return true;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const cap = oldKeys.length * 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
    this.count = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i]!;
      if (k !== EMPTY) this.set(k, oldVals[i]!);
    }
  }
}
