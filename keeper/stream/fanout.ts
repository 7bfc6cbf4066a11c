// The subscribers of the stream and the writing to them: each flush's messages (already
// serialized, once for everyone) go to every subscriber that keeps up; one whose unsent bytes
// exceed the limit is terminated, so a slow reader never holds memory or time from the writer.
// Used by the hub for in-process subscribers and by the API thread for its WebSocket clients.
//
// A large set is written in slices of `chunk` subscribers with a turn of the event loop between
// them, so a timer or a request never waits behind a thousand socket writes. Rounds keep their
// order: a round starts only when the one before it has reached every subscriber.

/** A subscriber's socket, as much of it as the fan-out uses (a ws WebSocket fits). */
export interface StreamClient {
  send(data: string): void;
  readonly bufferedAmount: number;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

export interface FanoutStats {
  clients: number;
  dropped: number;
  messages: number;
  bytes: number;
}

interface Round {
  messages: string[];
  clients: StreamClient[];
  next: number;
}

export class Fanout {
  readonly #clients = new Set<StreamClient>();
  readonly #maxBufferedBytes: number;
  readonly #chunk: number;
  readonly #onChange: (() => void) | undefined;
  #rounds: Round[] = [];
  #draining = false;
  readonly stats: FanoutStats = { clients: 0, dropped: 0, messages: 0, bytes: 0 };

  constructor(opts: { maxBufferedBytes: number; chunk?: number; onChange?: () => void }) {
    this.#maxBufferedBytes = opts.maxBufferedBytes;
    this.#chunk = opts.chunk ?? 100;
    this.#onChange = opts.onChange;
  }

  get size(): number {
    return this.#clients.size;
  }

  /** Adds a subscriber, sends it `hello` first, and returns its unsubscribe. */
  add(client: StreamClient, hello: string): () => void {
    this.#clients.add(client);
    this.#changed();
    this.#write(client, hello);
    return () => {
      if (this.#clients.delete(client)) this.#changed();
    };
  }

  /** Queues one round: every current subscriber gets these messages, in order. */
  write(messages: string[]): void {
    if (messages.length === 0 || this.#clients.size === 0) return;
    this.#rounds.push({ messages, clients: [...this.#clients], next: 0 });
    if (!this.#draining) this.#drain();
  }

  closeAll(code: number, reason: string): void {
    for (const c of this.#clients) c.close(code, reason);
    this.#clients.clear();
    this.#rounds = [];
    this.#changed();
  }

  #drain(): void {
    this.#draining = true;
    let budget = this.#chunk;
    while (this.#rounds.length > 0) {
      const round = this.#rounds[0]!;
      while (round.next < round.clients.length) {
        if (budget-- === 0) {
          setImmediate(() => this.#drain());
          return;
        }
        const client = round.clients[round.next++]!;
        // Unsubscribed since the round was queued.
        if (!this.#clients.has(client)) continue;
        this.#writeRound(client, round.messages);
      }
      this.#rounds.shift();
    }
    this.#draining = false;
  }

  #writeRound(client: StreamClient, messages: string[]): void {
    // Behind since the last round: dropped. Checked once per round, before writing, so a burst
    // within one round never counts against a client that drains between rounds.
    if (!this.#keepingUp(client)) return;
    // One syscall per subscriber per round: ws frames are corked on its socket, then written together.
    const socket = (client as { _socket?: { cork(): void; uncork(): void } })._socket;
    socket?.cork();
    for (const data of messages) {
      if (!this.#send(client, data)) break;
    }
    socket?.uncork();
  }

  /** Sends unless the client is too far behind, in which case it is dropped. */
  #write(client: StreamClient, data: string): boolean {
    return this.#keepingUp(client) && this.#send(client, data);
  }

  #keepingUp(client: StreamClient): boolean {
    if (client.bufferedAmount <= this.#maxBufferedBytes) return true;
    this.#clients.delete(client);
    this.stats.dropped++;
    this.#changed();
    client.terminate();
    return false;
  }

  #send(client: StreamClient, data: string): boolean {
    try {
      client.send(data);
    } catch {
      if (this.#clients.delete(client)) this.#changed();
      return false;
    }
    this.stats.messages++;
    this.stats.bytes += data.length;
    return true;
  }

  #changed(): void {
    this.stats.clients = this.#clients.size;
    this.#onChange?.();
  }
}
