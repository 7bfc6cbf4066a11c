// Who may hold a stream socket, and for how long. Every WebSocket client passes the gate before it
// subscribes: the gate refuses it (a close code and a reason) beyond a total cap or a cap per
// remote address, pings every admitted client on one shared timer, terminates a client that did
// not answer the previous ping by the next one, and terminates one whose unsent bytes exceed the
// cap even when nothing is being written to it (the fan-out drops slow readers when it writes).
//
// Rules, in the order they apply:
//   admit      total clients < maxClients, else close 1013 (try again later);
//              clients from this address < maxClientsPerAddress, else close 1008 (policy)
//   heartbeat  every pingIntervalMs: unsent bytes > maxBufferedBytes: terminate (slow);
//              the previous ping unanswered: terminate (unresponsive); else ping
// Browsers answer pings themselves; a client's own messages are ignored (app.ts).

/** A WebSocket as the gate uses it (a ws WebSocket fits). */
export interface GatedSocket {
  readonly bufferedAmount: number;
  ping(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: "pong" | "close", listener: () => void): unknown;
}

export interface StreamGateOptions {
  /** How often each client is pinged; a client has until the next ping to answer. 0: no heartbeat. */
  pingIntervalMs: number;
  /** Unsent bytes beyond which a client is terminated at the heartbeat. */
  maxBufferedBytes: number;
  /** Stream clients at once, from everywhere. */
  maxClients: number;
  /** Stream clients at once from one remote address. */
  maxClientsPerAddress: number;
}

export const DEFAULT_STREAM_GATE: StreamGateOptions = {
  pingIntervalMs: 30_000,
  maxBufferedBytes: 1 << 20,
  maxClients: 10_000,
  maxClientsPerAddress: 32,
};

/** Close codes of refused connections (RFC 6455 section 7.4.1). */
export const CLOSE_TRY_AGAIN_LATER = 1013;
export const CLOSE_POLICY_VIOLATION = 1008;

export interface StreamGateStats {
  clients: number;
  refused: number;
  unresponsive: number;
  slow: number;
}

interface Entry {
  address: string;
  awaitingPong: boolean;
}

export class StreamGate {
  readonly #o: StreamGateOptions;
  readonly #clients = new Map<GatedSocket, Entry>();
  readonly #perAddress = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  readonly stats: StreamGateStats = { clients: 0, refused: 0, unresponsive: 0, slow: 0 };

  constructor(opts: Partial<StreamGateOptions> = {}) {
    this.#o = { ...DEFAULT_STREAM_GATE, ...opts };
    for (const [k, v] of Object.entries(this.#o)) {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`stream gate: ${k} must be a non-negative integer, got ${v}`);
    }
  }

  get size(): number {
    return this.#clients.size;
  }

  /** Admits `socket` from `address`, or closes it with a code and reason and returns false. */
  admit(socket: GatedSocket, address: string): boolean {
    const fromAddress = this.#perAddress.get(address) ?? 0;
    if (this.#clients.size >= this.#o.maxClients) {
      return this.#refuse(socket, CLOSE_TRY_AGAIN_LATER, `the keeper is at its limit of ${this.#o.maxClients} stream clients: retry later`);
    }
    if (fromAddress >= this.#o.maxClientsPerAddress) {
      return this.#refuse(socket, CLOSE_POLICY_VIOLATION, `too many stream connections from this address (limit ${this.#o.maxClientsPerAddress})`);
    }
    const entry: Entry = { address, awaitingPong: false };
    this.#clients.set(socket, entry);
    this.#perAddress.set(address, fromAddress + 1);
    this.stats.clients = this.#clients.size;
    socket.on("pong", () => (entry.awaitingPong = false));
    socket.on("close", () => this.#release(socket));
    this.#startHeartbeat();
    return true;
  }

  /** Stops the heartbeat (the sockets themselves are closed by their server). */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One heartbeat: drop the slow and the silent, ping the rest (the timer calls it; tests may too). */
  beat(): void {
    for (const [socket, entry] of this.#clients) {
      if (socket.bufferedAmount > this.#o.maxBufferedBytes) {
        this.stats.slow++;
        this.#drop(socket);
      } else if (entry.awaitingPong) {
        this.stats.unresponsive++;
        this.#drop(socket);
      } else {
        entry.awaitingPong = true;
        try {
          socket.ping();
        } catch {
          this.#drop(socket);
        }
      }
    }
  }

  #refuse(socket: GatedSocket, code: number, reason: string): false {
    this.stats.refused++;
    socket.close(code, reason);
    return false;
  }

  #drop(socket: GatedSocket): void {
    this.#release(socket);
    socket.terminate();
  }

  #release(socket: GatedSocket): void {
    const entry = this.#clients.get(socket);
    if (entry === undefined) return;
    this.#clients.delete(socket);
    const n = (this.#perAddress.get(entry.address) ?? 1) - 1;
    if (n === 0) this.#perAddress.delete(entry.address);
    else this.#perAddress.set(entry.address, n);
    this.stats.clients = this.#clients.size;
    if (this.#clients.size === 0) this.stop();
  }

  #startHeartbeat(): void {
    if (this.#timer !== undefined || this.#o.pingIntervalMs === 0) return;
    this.#timer = setInterval(() => this.beat(), this.#o.pingIntervalMs);
    this.#timer.unref();
  }
}
