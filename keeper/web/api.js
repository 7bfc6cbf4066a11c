// HTTP and WebSocket access to the keeper that serves this page. Paths resolve against the page's
// own origin, so the same files work behind any host or port the keeper listens on.

export class KeeperError extends Error {
  constructor(status, body) {
    super(body?.message || `keeper answered ${status}`);
    this.name = "KeeperError";
    this.status = status;
    this.code = body?.error ?? "http_error";
    this.field = body?.field;
  }
}

async function parse(res) {
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { error: "bad_response", message: text.slice(0, 200) || `HTTP ${res.status}` };
  }
  if (!res.ok) throw new KeeperError(res.status, body);
  return body;
}

export async function getJSON(path, { signal } = {}) {
  const res = await fetch(new URL(path, location.origin), { headers: { accept: "application/json" }, signal });
  return parse(res);
}

export async function postJSON(path, payload) {
  const res = await fetch(new URL(path, location.origin), {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(payload),
  });
  return parse(res);
}

/**
 * A WebSocket to /ws that reconnects with capped exponential backoff and jitter. Every (re)connect
 * starts with a "hello" snapshot from the keeper, so nothing missed while away needs replaying.
 */
export function connectFeed({ onMessage, onStatus, baseDelayMs = 500, maxDelayMs = 10_000 }) {
  const url = new URL("/ws", location.origin);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  let ws = null;
  let attempt = 0;
  let timer = null;
  let stopped = false;

  const open = () => {
    timer = null;
    onStatus({ status: attempt === 0 ? "connecting" : "reconnecting", retryAt: 0 });
    ws = new WebSocket(url);
    ws.onopen = () => {
      attempt = 0;
      onStatus({ status: "live", retryAt: 0 });
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg.type === "string") onMessage(msg);
    };
    ws.onclose = () => {
      ws = null;
      if (stopped) return;
      const delay = Math.min(maxDelayMs, baseDelayMs * 2 ** attempt) * (0.8 + Math.random() * 0.4);
      attempt++;
      onStatus({ status: "reconnecting", retryAt: Date.now() + delay });
      timer = setTimeout(open, delay);
    };
  };
  open();
  // A laptop waking up or a tab coming back: retry at once instead of waiting out the backoff.
  const retryNow = () => {
    if (!stopped && timer !== null) {
      clearTimeout(timer);
      open();
    }
  };
  window.addEventListener("online", retryNow);
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && retryNow());
  return {
    close() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      ws?.close();
    },
  };
}
