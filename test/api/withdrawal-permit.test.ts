// POST /withdrawal-permit through app.inject over the real KeeperService and database, with the
// session runner and the settler's signer replaced: one signed request gets one permit, and no
// re-spelling of it (nonce with leading zeros, address case, v as 0/1, the high-s twin, upper-case
// hex), no parallel burst of it and no third party gets a second one.
import { expect } from "chai";
import type { FastifyInstance } from "fastify";
import type { Address, Hex } from "viem";
import { buildApp } from "../../keeper/api/app.ts";
import { KeeperService } from "../../keeper/api/service.ts";
import { openDatabase, transaction, type Db } from "../../keeper/store/database.ts";
import { putAccount } from "../../keeper/store/ledger.ts";
import { openPermits } from "../../keeper/store/permits.ts";
import { isNonceUsed } from "../../keeper/store/nonces.ts";
import { SECP256K1_N } from "../../keeper/auth/verify.ts";
import { StreamHub } from "../../keeper/stream/hub.ts";
import { Metrics } from "../../keeper/ops/metrics.ts";
import { systemClock } from "../../keeper/executor/clock.ts";
import type { ChainPorts, SessionRunner } from "../../keeper/session/runner.ts";
import { FAKE_DEPLOYMENT, signed, wallet } from "../support/keeper.ts";

const SESSION = 7;
const USDC = FAKE_DEPLOYMENT.tokens[0]!;

/** The same signature with s' = n - s and the other parity: it recovers the same signer. */
function malleate(signature: Hex): Hex {
  const r = signature.slice(2, 66);
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = Number.parseInt(signature.slice(130), 16);
  const twinS = (SECP256K1_N - s).toString(16).padStart(64, "0");
  return `0x${r}${twinS}${(v === 27 ? 28 : 27).toString(16)}`;
}

/** The same signature with v written as the y parity (0/1) instead of 27/28. */
const asYParity = (signature: Hex): Hex => `${signature.slice(0, 130)}0${Number.parseInt(signature.slice(130), 16) - 27}` as Hex;

describe("POST /withdrawal-permit: one signed request, one permit", function () {
  const alice = wallet();
  const bob = wallet();
  let db: Db;
  let app: FastifyInstance;
  let service: KeeperService;
  /** Reservations the pit made (the real runner journals a withdraw command for each). */
  let reserved: bigint[];
  let signatures: number;

  beforeEach(async () => {
    db = openDatabase(":memory:");
    putAccount(db, 3, alice.address, 1);
    putAccount(db, 4, bob.address, 1);
    reserved = [];
    signatures = 0;
    let seq = 0;
    // As SessionRunner.reserveWithdrawal: `inTransaction` (the nonce) runs in the journal's
    // transaction, and a throw there rolls the reservation back.
    const runner = {
      current: { id: SESSION, phase: "trading" },
      reserveWithdrawal(_accountId: number, _token: string, amount: bigint, inTransaction: () => void) {
        const s = transaction(db, () => {
          inTransaction();
          reserved.push(amount);
          return ++seq;
        });
        return { ok: true, sessionId: SESSION, token: USDC, seq: s };
      },
    } as unknown as SessionRunner;
    const chain = {
      permits: {
        deadline: async (nowSec: number, ttlSec: number) => BigInt(nowSec + ttlSec),
        sign: async () => {
          signatures++;
          return `0x${"11".repeat(65)}` as Hex;
        },
      },
    } as unknown as ChainPorts;
    service = new KeeperService({
      config: { chainId: 31337, maxSignedExpirySec: 3_600 },
      db,
      deployment: FAKE_DEPLOYMENT,
      runner,
      hub: new StreamHub({ maxBufferedBytes: 1 << 20, bookThrottleMs: 0 }),
      metrics: new Metrics(),
      catalogue: [],
      chain,
      clock: systemClock,
    });
    app = await buildApp({ keeper: service });
  });
  afterEach(async () => {
    await app.close();
    db.close();
  });

  const post = (payload: unknown) => app.inject({ method: "POST", url: "/withdrawal-permit", payload: payload as object });
  const request = (opts: { nonce?: bigint } = {}) => signed(alice, "WithdrawalRequest", { token: USDC.address, amount: "5000000" }, opts);
  const issued = () => openPermits(db, SESSION).length;

  it("issues a permit for a correctly signed request and consumes its nonce with the reservation", async () => {
    const body = await request();
    const r = await post(body);
    expect(r.statusCode, r.body).to.equal(200);
    expect(r.json().permit).to.include({ account: alice.address, amount: "5000000", sessionId: SESSION });
    expect(reserved).to.deep.equal([5_000_000n]);
    expect(issued()).to.equal(1);
    expect(isNonceUsed(db, alice.address, body.nonce)).to.equal(true);
  });

  it("refuses the same signed request replayed ten times with 401, issuing nothing more", async () => {
    const body = await request();
    expect((await post(body)).statusCode).to.equal(200);
    for (let i = 0; i < 10; i++) {
      const r = await post(body);
      expect(r.statusCode).to.equal(401);
      expect(r.json()).to.include({ error: "replayed_nonce", field: "nonce" });
    }
    expect(reserved).to.have.length(1);
    expect(issued()).to.equal(1);
    expect(signatures).to.equal(1);
  });

  it("issues one permit when ten copies arrive at once", async () => {
    const body = await request();
    const replies = await Promise.all(Array.from({ length: 10 }, () => post(body)));
    expect(replies.map((r) => r.statusCode).sort()).to.deep.equal([200, ...Array<number>(9).fill(401)]);
    expect(reserved).to.have.length(1);
    expect(issued()).to.equal(1);
  });

  it("refuses the nonce re-spelled with leading zeros or in hex with 400 naming nonce, before and after use", async () => {
    const body = await request({ nonce: 1796n });
    for (const nonce of ["01796", "001796", "0x704", "+1796", "1796.0", " 1796"]) {
      const r = await post({ ...body, nonce });
      expect(r.statusCode, nonce).to.equal(400);
      expect(r.json(), nonce).to.include({ error: "bad_request", field: "nonce" });
    }
    expect((await post(body)).statusCode).to.equal(200);
    for (const nonce of ["01796", "001796"]) expect((await post({ ...body, nonce })).statusCode, nonce).to.equal(400);
    expect(issued()).to.equal(1);
  });

  it("refuses a leading-zero replay that reaches the service without the schema with 401", async () => {
    const body = await request({ nonce: 1797n });
    expect((await service.withdrawalPermit(body)).ok).to.equal(true);
    for (const nonce of ["01797", "0001797"]) {
      const out = await service.withdrawalPermit({ ...body, nonce });
      expect(out.ok).to.equal(false);
      expect(!out.ok && out.refusal).to.include({ status: 401, field: "nonce" });
    }
    expect(issued()).to.equal(1);
  });

  it("refuses replays with the account or token in another case, v as 0/1 or the signature in upper case with 401", async () => {
    const body = await request();
    expect((await post(body)).statusCode).to.equal(200);
    const variants: Record<string, unknown> = {
      "lower-case account": { ...body, account: body.account.toLowerCase() },
      "upper-case account": { ...body, account: `0x${body.account.slice(2).toUpperCase()}` },
      "lower-case token": { ...body, token: body.token.toLowerCase() },
      "v as y parity": { ...body, signature: asYParity(body.signature) },
      "upper-case signature": { ...body, signature: `0x${body.signature.slice(2).toUpperCase()}` },
    };
    for (const [what, payload] of Object.entries(variants)) {
      const r = await post(payload);
      expect(r.statusCode, what).to.equal(401);
      expect(r.json(), what).to.include({ error: "replayed_nonce", field: "nonce" });
    }
    expect(issued()).to.equal(1);
  });

  it("refuses the high-s twin of the signature with 401 naming signature, fresh or replayed", async () => {
    const body = await request();
    const twin = { ...body, signature: malleate(body.signature) };
    const fresh = await post(twin);
    expect(fresh.statusCode).to.equal(401);
    expect(fresh.json()).to.include({ error: "high_s_signature", field: "signature" });
    expect(isNonceUsed(db, alice.address, body.nonce)).to.equal(false);
    expect((await post(body)).statusCode).to.equal(200);
    const replayed = await post(twin);
    expect(replayed.statusCode).to.equal(401);
    expect(replayed.json()).to.include({ error: "high_s_signature", field: "signature" });
    expect(issued()).to.equal(1);
  });

  it("cannot be reissued to anyone else: another account on the same signature is 401", async () => {
    const body = await request();
    expect((await post(body)).statusCode).to.equal(200);
    for (const account of [bob.address, bob.address.toLowerCase()] as Address[]) {
      const r = await post({ ...body, account });
      expect(r.statusCode).to.equal(401);
      expect(r.json()).to.include({ error: "wrong_signer", field: "signature" });
    }
    // Bob signing Alice's request himself is still not Alice's signature.
    const bobs = await signed(bob, "WithdrawalRequest", { token: USDC.address, amount: "5000000" }, { account: alice.address, nonce: BigInt(body.nonce) + 1n });
    expect((await post(bobs)).statusCode).to.equal(401);
    expect(reserved).to.have.length(1);
    expect(issued()).to.equal(1);
  });

  it("refuses a nonce or amount beyond uint256 with 400 naming the field", async () => {
    const body = await request();
    const big = (1n << 256n).toString();
    const n = await post({ ...body, nonce: big });
    expect(n.statusCode).to.equal(400);
    expect(n.json().field).to.equal("nonce");
    const a = await post({ ...body, amount: big });
    expect(a.statusCode).to.equal(400);
    expect(a.json().field).to.equal("amount");
    expect(issued()).to.equal(0);
  });
});
