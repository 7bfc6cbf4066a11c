// JSON that round-trips bigint: journal commands and settlement plans carry vault amounts, which
// exceed 2^53. A bigint is written as {"$bigint":"123"} so no string can be mistaken for one.

export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? { $bigint: v.toString() } : v));
}

export function fromJson<T = unknown>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === "$bigint") return BigInt((v as { $bigint: string }).$bigint);
    }
    return v;
  }) as T;
}
