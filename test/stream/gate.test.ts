// keeper/stream/gate.ts with stand-in sockets: the connection caps refuse with a close code and a
// reason, the heartbeat drops a client that does not answer or whose unsent bytes pile up, and a
// client that answers stays.
import { expect } from "chai";
import { CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER, StreamGate, type GatedSocket } from "../../keeper/stream/gate.ts";

class FakeSocket implements GatedSocket {
  bufferedAmount = 0;
  pings = 0;
  closed: { code: number | undefined; reason: string | undefined } | undefined;
  terminated = false;
  /** Answers pings (as browsers and ws clients do by default). */
  answers = true;
  failPing = false;
  readonly #listeners = new Map<string, (() => void)[]>();

  on(event: "pong" | "close", listener: () => void): this {
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), listener]);
    return this;
  }
  emit(event: "pong" | "close"): void {
    for (const l of this.#listeners.get(event) ?? []) l();
  }
  ping(): void {
    if (this.failPing) throw new Error("socket not open");
    this.pings++;
    if (this.answers) queueMicrotask(() => this.emit("pong"));
  }
  close(code?: number, reason?: string): void {
    this.closed = { code, reason };
    this.emit("close");
  }
  terminate(): void {
    this.terminated = true;
    this.emit("close");
  }
}

const tick = () => new Promise<void>((r) => queueMicrotask(r));

describe("stream gate (keeper/stream/gate.ts)", function () {
  describe("admit", function () {
    it("refuses the client beyond the per-address cap with 1008 and a reason; other addresses still get in", function () {
      const gate = new StreamGate({ maxClientsPerAddress: 2, pingIntervalMs: 0 });
      const a = [new FakeSocket(), new FakeSocket(), new FakeSocket()];
      expect(a.map((s) => gate.admit(s, "10.0.0.1"))).to.deep.equal([true, true, false]);
      expect(a[2]!.closed).to.deep.equal({ code: CLOSE_POLICY_VIOLATION, reason: "too many stream connections from this address (limit 2)" });
      expect(a[0]!.closed).to.equal(undefined);
      expect(gate.admit(new FakeSocket(), "10.0.0.2")).to.equal(true);
      expect(gate.size).to.equal(3);
      expect(gate.stats.refused).to.equal(1);
      gate.stop();
    });

    it("lets an address back in once one of its clients has closed", function () {
      const gate = new StreamGate({ maxClientsPerAddress: 1, pingIntervalMs: 0 });
      const first = new FakeSocket();
      expect(gate.admit(first, "10.0.0.1")).to.equal(true);
      expect(gate.admit(new FakeSocket(), "10.0.0.1")).to.equal(false);
      first.emit("close");
      expect(gate.admit(new FakeSocket(), "10.0.0.1")).to.equal(true);
      gate.stop();
    });

    it("refuses any client beyond the total cap with 1013 (try again later)", function () {
      const gate = new StreamGate({ maxClients: 3, maxClientsPerAddress: 10, pingIntervalMs: 0 });
      for (let i = 0; i < 3; i++) expect(gate.admit(new FakeSocket(), `10.0.0.${i}`)).to.equal(true);
      const late = new FakeSocket();
      expect(gate.admit(late, "10.0.0.9")).to.equal(false);
      expect(late.closed?.code).to.equal(CLOSE_TRY_AGAIN_LATER);
      expect(late.closed?.reason).to.match(/limit of 3 stream clients/);
      expect(Buffer.byteLength(late.closed!.reason!)).to.be.at.most(123);
      gate.stop();
    });

    it("refuses options that are not non-negative integers", function () {
      expect(() => new StreamGate({ pingIntervalMs: Number.POSITIVE_INFINITY })).to.throw(RangeError, /pingIntervalMs/);
      expect(() => new StreamGate({ maxClients: -1 })).to.throw(RangeError, /maxClients/);
    });
  });

  describe("heartbeat", function () {
    it("terminates a client that did not answer the previous ping; one that answers stays", async function () {
      const gate = new StreamGate({ pingIntervalMs: 0 });
      const alive = new FakeSocket();
      const silent = Object.assign(new FakeSocket(), { answers: false });
      gate.admit(alive, "a");
      gate.admit(silent, "b");
      for (let i = 0; i < 5; i++) {
        gate.beat();
        await tick();
      }
      expect(silent.terminated).to.equal(true);
      expect(silent.pings).to.equal(1);
      expect(alive.terminated).to.equal(false);
      expect(alive.pings).to.equal(5);
      expect(gate.stats).to.include({ clients: 1, unresponsive: 1, slow: 0 });
    });

    it("terminates a client whose unsent bytes exceed the cap", function () {
      const gate = new StreamGate({ pingIntervalMs: 0, maxBufferedBytes: 1000 });
      const reader = Object.assign(new FakeSocket(), { bufferedAmount: 1000 });
      const slow = Object.assign(new FakeSocket(), { bufferedAmount: 1001 });
      gate.admit(reader, "a");
      gate.admit(slow, "a");
      gate.beat();
      expect(slow.terminated).to.equal(true);
      expect(reader.terminated).to.equal(false);
      expect(gate.stats).to.include({ clients: 1, slow: 1 });
    });

    it("drops a client whose socket cannot be pinged", function () {
      const gate = new StreamGate({ pingIntervalMs: 0 });
      const broken = Object.assign(new FakeSocket(), { failPing: true });
      gate.admit(broken, "a");
      gate.beat();
      expect(broken.terminated).to.equal(true);
      expect(gate.size).to.equal(0);
    });

    it("pings on its own timer while it has clients", async function () {
      const gate = new StreamGate({ pingIntervalMs: 10 });
      const s = new FakeSocket();
      gate.admit(s, "a");
      await new Promise((r) => setTimeout(r, 60));
      expect(s.pings).to.be.greaterThan(2);
      s.emit("close");
      const pings = s.pings;
      await new Promise((r) => setTimeout(r, 40));
      expect(s.pings).to.equal(pings);
    });
  });
});
