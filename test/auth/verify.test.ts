// keeper/auth/verify.ts and the used-nonce store it relies on (keeper/store/nonces.ts): one
// spelling per nonce and per signature, so an accepted action cannot be replayed re-encoded.
import { expect } from "chai";
import type { Hex } from "viem";
import { checkEnvelope, checkSignature, isCanonicalUint256, MAX_UINT256, SECP256K1_N, verifyAction } from "../../keeper/auth/verify.ts";
import { keeperDomain } from "../../keeper/auth/eip712.ts";
import { openDatabase } from "../../keeper/store/database.ts";
import { canonicalNonce, isNonceUsed, pruneNonces, useNonce } from "../../keeper/store/nonces.ts";
import { VAULT, signed, wallet } from "../support/keeper.ts";

const domain = keeperDomain(31337, VAULT);

/** The same signature with s' = n - s and the other parity: it recovers the same signer. */
function malleate(signature: Hex): Hex {
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = Number.parseInt(signature.slice(130), 16);
  return `0x${signature.slice(2, 66)}${(SECP256K1_N - s).toString(16).padStart(64, "0")}${(v === 27 ? 28 : 27).toString(16)}`;
}
const nowSec = () => Math.floor(Date.now() / 1000);

describe("auth (keeper/auth/verify.ts)", function () {
  const alice = wallet();

  describe("isCanonicalUint256", function () {
    it("accepts decimal uint256 values in their one spelling", function () {
      for (const s of ["0", "1", "1796", MAX_UINT256.toString()]) expect(isCanonicalUint256(s), s).to.equal(true);
    });
    it("refuses leading zeros, signs, hex, exponents, blanks and values beyond 2^256 - 1", function () {
      for (const s of ["", "00", "01796", "-0", "-1", "+1", "0x10", "1e3", "1.0", " 1", "1 ", "Infinity", (MAX_UINT256 + 1n).toString()]) {
        expect(isCanonicalUint256(s), JSON.stringify(s)).to.equal(false);
      }
    });
  });

  describe("checkEnvelope", function () {
    it("refuses a nonce that is not canonical decimal, naming nonce", async function () {
      const body = await signed(alice, "SetPrompt", { prompt: "x" }, { nonce: 1796n });
      expect(checkEnvelope(body, { domain, nowSec: nowSec(), maxExpirySec: 3600 })).to.equal(null);
      for (const nonce of ["01796", "0x704"]) {
        expect(checkEnvelope({ ...body, nonce }, { domain, nowSec: nowSec(), maxExpirySec: 3600 })).to.include({ code: "bad_nonce", field: "nonce" });
      }
    });
  });

  describe("checkSignature", function () {
    it("accepts the low-s signature and refuses its high-s twin, naming signature", async function () {
      const body = await signed(alice, "SetPrompt", { prompt: "x" });
      const message = { account: body.account, prompt: "x" };
      expect(await checkSignature("SetPrompt", message, body, domain, alice.address)).to.equal(null);
      const twin = { ...body, signature: malleate(body.signature) };
      expect(await checkSignature("SetPrompt", message, twin, domain, alice.address)).to.include({ code: "high_s_signature", field: "signature" });
    });
    it("refuses a signature that is not 65 bytes", async function () {
      const body = await signed(alice, "SetPrompt", { prompt: "x" });
      const short = { ...body, signature: body.signature.slice(0, 130) as Hex };
      expect(await checkSignature("SetPrompt", { account: body.account, prompt: "x" }, short, domain, alice.address)).to.include({ code: "bad_signature", field: "signature" });
    });
  });

  describe("verifyAction with the nonce store", function () {
    it("sees a nonce used in one spelling as used in every spelling and every address case", async function () {
      const db = openDatabase(":memory:");
      const body = await signed(alice, "SetPrompt", { prompt: "x" }, { nonce: 1796n });
      const opts = { domain, nowSec: nowSec(), maxExpirySec: 3600, isNonceUsed: (a: string, n: string) => isNonceUsed(db, a, n) };
      expect(await verifyAction("SetPrompt", { account: body.account, prompt: "x" }, body, opts)).to.equal(null);
      expect(useNonce(db, body.account, body.nonce, body.expiry)).to.equal(true);
      expect(await verifyAction("SetPrompt", { account: body.account, prompt: "x" }, body, opts)).to.include({ code: "replayed_nonce" });
      for (const account of [body.account.toLowerCase(), `0x${body.account.slice(2).toUpperCase()}`]) {
        expect(isNonceUsed(db, account, "1796"), account).to.equal(true);
        expect(useNonce(db, account, "1796", body.expiry), account).to.equal(false);
      }
      db.close();
    });
  });
});

describe("used nonces (keeper/store/nonces.ts)", function () {
  it("keys a nonce by its value: leading zeros, hex and bigint are the same nonce", function () {
    const db = openDatabase(":memory:");
    expect(useNonce(db, "0xAbC0000000000000000000000000000000000001", "1796", 100)).to.equal(true);
    for (const n of ["01796", "001796", "0x704", 1796n]) {
      expect(isNonceUsed(db, "0xabc0000000000000000000000000000000000001", n), String(n)).to.equal(true);
      expect(useNonce(db, "0xabc0000000000000000000000000000000000001", n, 100), String(n)).to.equal(false);
    }
    expect((db.prepare("SELECT nonce FROM nonces").all() as { nonce: string }[]).map((r) => r.nonce)).to.deep.equal(["1796"]);
    expect(canonicalNonce("000")).to.equal("0");
    expect(() => canonicalNonce("-1")).to.throw(RangeError);
    db.close();
  });

  it("still counts rows stored with leading zeros before keys were canonical", function () {
    const db = openDatabase(":memory:");
    db.prepare("INSERT INTO nonces (account, nonce, expiry) VALUES (?, ?, ?)").run("0xabc0000000000000000000000000000000000001", "01796", 100);
    db.prepare("INSERT INTO nonces (account, nonce, expiry) VALUES (?, ?, ?)").run("0xabc0000000000000000000000000000000000001", "00", 100);
    expect(isNonceUsed(db, "0xabc0000000000000000000000000000000000001", "1796")).to.equal(true);
    expect(useNonce(db, "0xabc0000000000000000000000000000000000001", "1796", 100)).to.equal(false);
    expect(useNonce(db, "0xabc0000000000000000000000000000000000001", "0", 100)).to.equal(false);
    expect(useNonce(db, "0xabc0000000000000000000000000000000000001", "17960", 100)).to.equal(true);
    expect(pruneNonces(db, 101)).to.equal(3);
    db.close();
  });
});
