// Decoding of the vault's packed settlement entries (ICMEVault NatSpec): 21 bytes each,
// uint32 accountId | uint8 tokenIndex | int128 delta, big-endian, delta in two's complement.
import type { Hex } from "viem";

export const ENTRY_BYTES = 21;

export type SettlementEntry = { accountId: number; tokenIndex: number; delta: bigint };

const INT128_SIGN = 1n << 127n;
const UINT128_RANGE = 1n << 128n;

export class MalformedEntriesError extends Error {
  override readonly name = "MalformedEntriesError";
  constructor(readonly byteLength: number) {
    super(`packed entries must be a multiple of ${ENTRY_BYTES} bytes, got ${byteLength}`);
  }
}

/** The entries of one posted batch, in posting order. */
export function decodeEntries(entries: Hex): SettlementEntry[] {
  const hex = entries.slice(2);
  if (hex.length % 2 !== 0 || (hex.length / 2) % ENTRY_BYTES !== 0) throw new MalformedEntriesError(hex.length / 2);
  const out: SettlementEntry[] = [];
  for (let at = 0; at < hex.length; at += ENTRY_BYTES * 2) {
    const accountId = Number.parseInt(hex.slice(at, at + 8), 16);
    const tokenIndex = Number.parseInt(hex.slice(at + 8, at + 10), 16);
    const raw = BigInt(`0x${hex.slice(at + 10, at + 42)}`);
    out.push({ accountId, tokenIndex, delta: raw >= INT128_SIGN ? raw - UINT128_RANGE : raw });
  }
  return out;
}
