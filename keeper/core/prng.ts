// Seeded randomness, the one implementation for everything that needs reproducible draws: rule
// brokers (the seed arrives in their context, so a decision is a pure function of it), property
// tests, benchmarks and simulated feeds. The engine itself never draws.

/** mulberry32: 32-bit state, tiny and fast; good enough for jitter and for exploring command streams. */
export class Prng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** A draw function over a fresh Prng. */
export function rng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.next();
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
