// Seeded randomness for rule brokers: the seed arrives in the context, so a decision is a pure
// function of its context and a session replays exactly.

/** mulberry32: tiny, fast, good enough for jittering quote sizes. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes integers into one 32-bit seed (FNV-1a over their bytes). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    let x = Math.trunc(p);
    for (let i = 0; i < 8; i++) {
      h ^= x & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
      x = Math.floor(x / 256);
    }
  }
  return h >>> 0;
}
