// Browser wallet access through EIP-1193 (window.ethereum), with the few ABI encodings the page
// needs written out by hand: a selector and 32-byte words, no library.

/** Function selectors: the first 4 bytes of keccak256 of each signature. */
export const SELECTORS = {
  approve: "095ea7b3", // approve(address,uint256)
  deposit: "47e7ef24", // deposit(address,uint256)
  allowance: "dd62ed3e", // allowance(address,address)
  balanceOf: "70a08231", // balanceOf(address)
  withdraw: "f3fef3a3", // withdraw(address,uint256)
  withdrawWithPermit: "5cc9b8f4", // withdrawWithPermit(address,uint256,address,uint256,uint256,bytes)
};

const UINT256_MAX = (1n << 256n) - 1n;

export function provider() {
  const eth = globalThis.ethereum;
  return eth && typeof eth.request === "function" ? eth : null;
}

export class WalletError extends Error {
  constructor(message, code) {
    super(message);
    this.name = "WalletError";
    this.code = code;
  }
}

/** Turns a provider error into a sentence a user can act on. */
export function walletMessage(err) {
  const code = err?.code;
  if (code === 4001) return "You rejected the request in your wallet.";
  if (code === 4100) return "The wallet has not authorised this site: connect again.";
  if (code === 4902) return "Your wallet does not know this chain: add it in the wallet first.";
  if (code === -32002) return "A request is already waiting in your wallet: open it.";
  return err?.message || String(err);
}

function word(hex) {
  const h = hex.replace(/^0x/, "").toLowerCase();
  if (h.length > 64 || /[^0-9a-f]/.test(h)) throw new WalletError(`not encodable as a 32-byte word: ${hex}`);
  return h.padStart(64, "0");
}

export function encodeAddress(address) {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new WalletError(`not an address: ${address}`);
  return word(address);
}

export function encodeUint(value) {
  const v = BigInt(value);
  if (v < 0n || v > UINT256_MAX) throw new WalletError(`uint256 out of range: ${value}`);
  return word(v.toString(16));
}

/** A `bytes` argument for encodeCall: `{ bytes: "0x…" }`. */
export function bytesArg(hex) {
  if (typeof hex !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(hex)) throw new WalletError(`not bytes: ${hex}`);
  return { bytes: hex.slice(2).toLowerCase() };
}

/**
 * selector + arguments: addresses and uints as 32-byte words; a `bytesArg` as its offset in the
 * head and, after every head word, its length and its bytes padded to whole words (the ABI's
 * encoding of a dynamic argument).
 */
export function encodeCall(name, args) {
  const selector = SELECTORS[name];
  if (!selector) throw new WalletError(`unknown function ${name}`);
  let head = "";
  let tail = "";
  for (const a of args) {
    if (a && typeof a === "object" && typeof a.bytes === "string") {
      head += encodeUint(args.length * 32 + tail.length / 2);
      tail += encodeUint(a.bytes.length / 2) + a.bytes.padEnd(Math.ceil(a.bytes.length / 64) * 64, "0");
    } else head += typeof a === "string" && a.startsWith("0x") && a.length === 42 ? encodeAddress(a) : encodeUint(a);
  }
  return "0x" + selector + head + tail;
}

export async function requestAccount() {
  const eth = provider();
  if (!eth) throw new WalletError("No browser wallet found. Install MetaMask, Rabby or another EIP-1193 wallet, then reload this page.", "no_wallet");
  const accounts = await eth.request({ method: "eth_requestAccounts" });
  if (!Array.isArray(accounts) || accounts.length === 0) throw new WalletError("The wallet returned no account.", "no_account");
  return accounts[0];
}

/** Accounts already authorised for this site, without prompting. */
export async function authorisedAccount() {
  const eth = provider();
  if (!eth) return null;
  try {
    const accounts = await eth.request({ method: "eth_accounts" });
    return Array.isArray(accounts) && accounts[0] ? accounts[0] : null;
  } catch {
    return null;
  }
}

export async function chainId() {
  return Number.parseInt(await provider().request({ method: "eth_chainId" }), 16);
}

export async function switchChain(id) {
  await provider().request({ method: "wallet_switchEthereumChain", params: [{ chainId: "0x" + id.toString(16) }] });
}

export async function callUint(to, data) {
  const out = await provider().request({ method: "eth_call", params: [{ to, data }, "latest"] });
  if (typeof out !== "string" || !/^0x[0-9a-fA-F]*$/.test(out) || out.length < 3) return 0n;
  return BigInt(out.slice(0, 66));
}

export async function sendTransaction(tx) {
  return provider().request({ method: "eth_sendTransaction", params: [tx] });
}

/** Polls for the receipt; throws if the transaction reverted or nothing arrives in time. */
export async function waitForReceipt(hash, { timeoutMs = 180_000, pollMs = 1000 } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await provider().request({ method: "eth_getTransactionReceipt", params: [hash] });
    if (r) {
      if (r.status === "0x0" || r.status === 0) throw new WalletError(`transaction ${hash.slice(0, 10)}… reverted`, "reverted");
      return r;
    }
    if (Date.now() > until) throw new WalletError(`no receipt for ${hash.slice(0, 10)}… yet: check your wallet`, "timeout");
    await new Promise((ok) => setTimeout(ok, pollMs));
  }
}

/**
 * Builds the eth_signTypedData_v4 payload for one action from the keeper's published domain and
 * types: the message takes exactly the struct's fields from `values`, so the page signs what the
 * keeper checks even if the keeper adds a field.
 */
export function typedDataFor(eip712, primaryType, values) {
  const fields = eip712?.types?.[primaryType];
  if (!Array.isArray(fields)) throw new WalletError(`the keeper publishes no EIP-712 type ${primaryType}`);
  const message = {};
  for (const f of fields) {
    if (!(f.name in values)) throw new WalletError(`the page has no value for ${primaryType}.${f.name}`);
    message[f.name] = values[f.name];
  }
  const types = { EIP712Domain: domainType(eip712.domain), [primaryType]: fields };
  // Nested struct types the primary type refers to, if the keeper ever uses any.
  const queue = [...fields];
  while (queue.length) {
    const base = queue.shift().type.replace(/\[\d*\]$/, "");
    if (eip712.types[base] && !types[base]) {
      types[base] = eip712.types[base];
      queue.push(...eip712.types[base]);
    }
  }
  return { types, primaryType, domain: eip712.domain, message };
}

function domainType(domain) {
  const order = [
    ["name", "string"],
    ["version", "string"],
    ["chainId", "uint256"],
    ["verifyingContract", "address"],
    ["salt", "bytes32"],
  ];
  return order.filter(([k]) => domain && domain[k] !== undefined).map(([name, type]) => ({ name, type }));
}

export async function signTypedData(account, typedData) {
  return provider().request({ method: "eth_signTypedData_v4", params: [account, JSON.stringify(typedData)] });
}

let nonceSeq = 0;
/** A fresh nonce per request: milliseconds since the epoch times 1000 plus a counter, as a decimal string. */
export function freshNonce() {
  nonceSeq = (nonceSeq + 1) % 1000;
  return (BigInt(Date.now()) * 1000n + BigInt(nonceSeq)).toString();
}
