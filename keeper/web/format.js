// Display formatting for the pit page. Amounts arrive as decimal strings of base units and prices
// as integer ticks; everything here is exact BigInt arithmetic until the final string, so a
// memecoin supply of 10^33 base units or a price of 10^-12 USDC prints without float rounding.

const TEN = 10n;

/** Parses a decimal string (or integer number / bigint) of base units; null when malformed. */
export function toBig(value) {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value);
  return null;
}

function group(intDigits) {
  return intDigits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Exact decimal rendering of `value / 10^decimals` with every digit, no grouping (for inputs). */
export function formatUnitsExact(value, decimals) {
  const v = toBig(value) ?? 0n;
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const s = abs.toString().padStart(decimals + 1, "0");
  const int = decimals === 0 ? s : s.slice(0, -decimals);
  const frac = decimals === 0 ? "" : s.slice(-decimals).replace(/0+$/, "");
  return `${neg ? "-" : ""}${int}${frac ? "." + frac : ""}`;
}

/**
 * `value / 10^decimals` rounded half away from zero to `frac` places, grouped with commas.
 * `sign: true` prefixes "+" on positive values (PnL).
 */
export function formatFixed(value, decimals, frac, opts = {}) {
  const v = toBig(value);
  if (v === null) return "—";
  const neg = v < 0n;
  let abs = neg ? -v : v;
  if (frac < decimals) {
    const div = TEN ** BigInt(decimals - frac);
    abs = (abs + div / 2n) / div;
  } else {
    abs = abs * TEN ** BigInt(frac - decimals);
  }
  const s = abs.toString().padStart(frac + 1, "0");
  const int = frac === 0 ? s : s.slice(0, -frac);
  const f = frac === 0 ? "" : "." + s.slice(-frac);
  const sign = neg && abs !== 0n ? "-" : opts.sign && abs !== 0n ? "+" : "";
  return `${sign}${group(int)}${f}`;
}

const SUFFIXES = [
  [15, "Q"],
  [12, "T"],
  [9, "B"],
  [6, "M"],
  [3, "K"],
];

/**
 * Compact human amount of `value / 10^decimals`: 1.25M, 980.4K, 12.5, 0.0042. Three significant
 * digits or two decimals, whichever shows more; suffixes above ten thousand.
 */
export function formatCompact(value, decimals) {
  const v = toBig(value);
  if (v === null) return "—";
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const sign = neg ? "-" : "";
  const whole = abs / TEN ** BigInt(decimals);
  for (const [exp, suffix] of SUFFIXES) {
    if (exp === 3 && whole < 10_000n) break;
    if (whole >= TEN ** BigInt(exp)) {
      // Scale to the suffix with two decimals: value / 10^(decimals + exp - 2), rounded.
      const shift = decimals + exp - 2;
      const scaled = roundDiv(abs, TEN ** BigInt(shift));
      const int = scaled / 100n;
      const rest = (scaled % 100n).toString().padStart(2, "0");
      const frac = int >= 100n ? "" : int >= 10n ? "." + rest[0] : "." + rest;
      return `${sign}${group(int.toString())}${frac}${suffix}`;
    }
  }
  if (whole >= 1n) return sign + formatFixed(abs, decimals, whole >= 1000n ? 0 : 2);
  return sign + formatSignificant(abs, TEN ** BigInt(decimals), 3);
}

/** A balance: cents below a million whole tokens, compact above, significant digits below one. */
export function formatBalance(value, decimals) {
  const v = toBig(value);
  if (v === null) return "—";
  const abs = v < 0n ? -v : v;
  const whole = abs / TEN ** BigInt(decimals);
  if (whole >= 1_000_000n) return formatCompact(v, decimals);
  if (whole >= 1n || abs === 0n) return formatFixed(v, decimals, Math.min(2, decimals));
  return (v < 0n ? "-" : "") + formatSignificant(abs, TEN ** BigInt(decimals), 4);
}

function roundDiv(a, b) {
  return (a + b / 2n) / b;
}

/** num/den (both positive bigint) as a plain decimal with `sig` significant digits. */
export function formatSignificant(num, den, sig) {
  if (num === 0n) return "0";
  let int = num / den;
  if (int > 0n) {
    const intDigits = int.toString().length;
    const frac = Math.max(0, sig - intDigits);
    const scaled = roundDiv(num * TEN ** BigInt(frac), den);
    const s = scaled.toString().padStart(frac + 1, "0");
    return frac === 0 ? group(s) : `${group(s.slice(0, -frac))}.${s.slice(-frac)}`.replace(/\.?0+$/, "");
  }
  // Below one: count leading zeros, then take `sig` digits.
  let zeros = 0;
  let scaled = num * TEN;
  while (scaled < den) {
    zeros++;
    scaled *= TEN;
  }
  const frac = zeros + sig;
  const digits = roundDiv(num * TEN ** BigInt(frac), den).toString().padStart(frac, "0");
  return `0.${digits}`.replace(/0+$/, "").replace(/\.$/, "");
}

/**
 * Unit helper for one pair. A price is `ticks * tickSize` quote base units per lot, a lot is
 * `lotSize` base-token base units, so the price of one whole base token is
 * ticks * tickSize * 10^baseDecimals / (lotSize * 10^quoteDecimals) quote tokens. The number of
 * decimals shown is the fewest that print one tick exactly, so ladder columns line up.
 */
export function pairUnits(pair, baseDecimals, quoteDecimals) {
  const tickSize = toBig(pair.tickSize) ?? 1n;
  const lotSize = toBig(pair.lotSize) ?? 1n;
  const num = tickSize * TEN ** BigInt(baseDecimals);
  const den = lotSize * TEN ** BigInt(quoteDecimals);
  let priceDecimals = 0;
  while (priceDecimals < 18 && (num * TEN ** BigInt(priceDecimals)) % den !== 0n) priceDecimals++;
  const pow = TEN ** BigInt(priceDecimals);
  return {
    priceDecimals,
    /** ticks -> exact-enough decimal string of quote per whole base token (fixed decimals). */
    price(ticks) {
      const t = toBig(ticks);
      if (t === null) return "—";
      return formatFixed(roundDiv(t * num * pow, den), priceDecimals, priceDecimals);
    },
    /** ticks -> number, for chart geometry only. */
    priceNumber(ticks) {
      return (Number(ticks) * Number(num)) / Number(den);
    },
    /** lots -> base units of the base token. */
    baseUnits(lots) {
      return (toBig(lots) ?? 0n) * lotSize;
    },
    /** lots -> compact amount of base tokens. */
    size(lots) {
      return formatCompact((toBig(lots) ?? 0n) * lotSize, baseDecimals);
    },
    /** price * size in quote base units (exact: that is what the tick definition guarantees). */
    notional(ticks, lots) {
      return (toBig(ticks) ?? 0n) * (toBig(lots) ?? 0n) * tickSize;
    },
  };
}

/**
 * Parses a user-typed decimal ("12.5", "1,000") into base units; returns {value} or {error}.
 * Refuses more fractional digits than the token has rather than silently rounding.
 */
export function parseUnits(text, decimals) {
  const s = String(text).trim().replace(/[,_\s]/g, "");
  if (s === "") return { error: "enter an amount" };
  const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[1] === "" && (m[2] ?? "") === "")) return { error: "not a number" };
  const frac = m[2] ?? "";
  if (frac.length > decimals) return { error: `at most ${decimals} decimals` };
  const value = BigInt((m[1] || "0") + frac.padEnd(decimals, "0"));
  if (value === 0n) return { error: "must be more than zero" };
  return { value };
}

/** Percentage change a -> b as "+1.23%" (display only). */
export function formatChangePct(from, to) {
  const a = toBig(from);
  const b = toBig(to);
  if (a === null || b === null || a <= 0n) return "";
  const diff = b - a;
  const bps = roundDiv((diff < 0n ? -diff : diff) * 10_000n, a);
  return formatFixed(diff < 0n ? -bps : bps, 2, 2, { sign: true }) + "%";
}

/** 0x1234…abcd */
export function shortAddress(address) {
  if (typeof address !== "string" || address.length < 12) return String(address ?? "");
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}

/** Account label: the address shortened when known, else "#id". */
export function accountLabel(account, address) {
  if (typeof address === "string" && address.startsWith("0x")) return shortAddress(address);
  if (typeof account === "string" && account.startsWith("0x")) return shortAddress(account);
  return account === undefined || account === null ? "?" : `#${account}`;
}

export function formatClock(ms) {
  if (!Number.isFinite(ms)) return "--:--";
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** Time left on a request or quote: "45s", "2:05", or "expiring" once due (the keeper sweeps it). */
export function formatLeft(ms) {
  if (!Number.isFinite(ms)) return "";
  if (ms <= 0) return "expiring";
  const total = Math.ceil(ms / 1000);
  return total < 60 ? `${total}s` : `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

export function formatTime(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
