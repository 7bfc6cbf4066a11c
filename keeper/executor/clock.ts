// The session loop reads time only through a Clock, so tests and the demo can run it on a manual
// or accelerated clock while production uses the wall clock.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimer(fn: () => void, delayMs: number): TimerHandle;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, delayMs) {
    const t = setTimeout(fn, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(t) };
  },
};

interface PendingTimer {
  at: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

/** A clock that moves only when told to; timers fire in time order during `advance`. */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: PendingTimer[] = [];

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, delayMs: number): TimerHandle {
    const timer: PendingTimer = { at: this.t + Math.max(0, delayMs), seq: this.seq++, fn, live: true };
    this.timers.push(timer);
    return { cancel: () => void (timer.live = false) };
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      this.timers = this.timers.filter((x) => x.live);
      let next: PendingTimer | undefined;
      for (const x of this.timers) {
        if (x.at <= target && (next === undefined || x.at < next.at || (x.at === next.at && x.seq < next.seq))) next = x;
      }
      if (next === undefined) break;
      this.t = Math.max(this.t, next.at);
      next.live = false;
      next.fn();
    }
    this.t = target;
  }
}
