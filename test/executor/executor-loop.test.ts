// The executor's session loop as the runner drives it (keeper/session/executor-loop.ts): its close
// stores every broker's lessons before it returns, and a slow expensive model's lessons replace them
// when they come, long after the close.
import { expect } from "chai";
import pino from "pino";
import { catalogue } from "../../keeper/brokers/catalogue.ts";
import { ManualClock } from "../../keeper/executor/clock.ts";
import { Metrics } from "../../keeper/ops/metrics.ts";
import { executorLoopFactory } from "../../keeper/session/executor-loop.ts";
import { getSetting, openDatabase, setSetting } from "../../keeper/store/database.ts";
import { QUOTE, COUNTERPARTY } from "../support/executor.ts";
import { OpenAICompatibleServer } from "../support/openai-server.ts";
import { TestPit } from "../support/pit.ts";

const AI = { accountId: 10, address: "0x00000000000000000000000000000000000000a1", brokerId: "openai-gpt5", prompt: "Quote PEPE.", pairs: ["PEPE/USDC"] };
const RULE = { accountId: 11, address: "0x00000000000000000000000000000000000000a2", brokerId: "rule-market-maker", prompt: "size 2", pairs: ["PEPE/USDC"] };
const MODEL_LESSONS = ["Quote tighter when the book is thin.", "Flatten before the bell."];
/** Longer than the 5 s the close used to wait for the model (the expensive tier may take 30 s). */
const SLOW_MS = 6_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("session/executor-loop", function () {
  this.timeout(30_000);
  let server: OpenAICompatibleServer;
  before(async () => {
    server = await OpenAICompatibleServer.start();
  });
  after(async () => {
    await server.close();
  });

  /** A session of three ticks with one AI and one rule broker; the model takes `slowMs` over its lessons. */
  async function session(slowMs: number) {
    server.reset();
    const asked = { lessons: 0 };
    server.respond((req) => {
      if (req.body?.response_format?.json_schema?.name === "broker_lessons") {
        asked.lessons++;
        return { kind: "json", json: { lessons: MODEL_LESSONS }, delayMs: slowMs };
      }
      return { kind: "json", json: QUOTE };
    });
    const clock = new ManualClock(1_000_000);
    const pit = new TestPit(clock).fundAndOpen([AI.accountId, RULE.accountId, COUNTERPARTY]);
    pit.rest(COUNTERPARTY, "buy", 9_990, 100);
    pit.rest(COUNTERPARTY, "sell", 10_010, 100);
    const db = openDatabase(":memory:");
    setSetting(db, `lessons:${AI.address}`, JSON.stringify(["from the session before"]));
    const factory = executorLoopFactory({
      catalogue: catalogue({ OPENAI_API_KEY: "sk-test", CME_OPENAI_BASE_URL: server.url }),
      clock,
      tickMs: 1_000,
      metrics: new Metrics(),
      log: pino({ level: "silent" }),
      db,
    });
    const loop = factory({ port: pit.port, participants: [AI, RULE], sessionId: 1, endsAt: 0, onOutcry: () => {} });
    loop.start();
    for (let i = 0; i < 3; i++) {
      clock.advance(1_000);
      // The AI broker's call goes over loopback HTTP.
      await sleep(150);
    }
    return { loop, db, asked };
  }

  const stored = (db: ReturnType<typeof openDatabase>, address: string) => JSON.parse(getSetting(db, `lessons:${address}`) ?? "null") as string[] | null;

  it("stores lessons before the session's close returns, and the slow model's replace them when they come", async () => {
    const { loop, db, asked } = await session(SLOW_MS);
    // Last session's lessons reached the request.
    expect(JSON.stringify(server.requests[0]?.body)).to.contain("from the session before");

    const t0 = Date.now();
    await loop.stop();
    const closeMs = Date.now() - t0;
    expect(closeMs).to.be.below(2_000);
    // Before the close returned: both brokers' deterministic lessons, though the model is still thinking.
    expect(stored(db, AI.address)![0]).to.match(/^Last session: PnL/);
    expect(stored(db, RULE.address)![0]).to.match(/^Last session: PnL/);

    const until = Date.now() + SLOW_MS + 5_000;
    while (stored(db, AI.address)![0] !== MODEL_LESSONS[0] && Date.now() < until) await sleep(100);
    expect(stored(db, AI.address)).to.deep.equal(MODEL_LESSONS);
    expect(Date.now() - t0).to.be.at.least(SLOW_MS);
    expect(asked.lessons).to.equal(1);
    expect(stored(db, RULE.address)![0]).to.match(/^Last session: PnL/);
    db.close();
  });

  it("never lets a late model answer overwrite lessons stored since (a later session's)", async () => {
    const { loop, db, asked } = await session(1_000);
    await loop.stop();
    expect(stored(db, AI.address)![0]).to.match(/^Last session: PnL/);
    setSetting(db, `lessons:${AI.address}`, JSON.stringify(["a later session's lesson"]));
    while (asked.lessons === 0) await sleep(50);
    await sleep(1_500);
    expect(stored(db, AI.address)).to.deep.equal(["a later session's lesson"]);
    db.close();
  });
});
