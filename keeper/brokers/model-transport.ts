// How a chat-completions request reaches a model: the openai SDK, either on the keeper's own
// thread or in worker threads (worker-transport.ts) so that building requests and parsing HTTP
// for a thousand brokers a second never runs on the session loop's thread.
//
// Whatever the SDK throws becomes a typed BrokerFailure here, so only plain data crosses a
// thread boundary. (This module and model-worker.ts use only erasable TypeScript, so a worker
// can load them with Node's built-in type stripping.)
import OpenAI, {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  AuthenticationError,
  PermissionDeniedError,
  RateLimitError,
} from "openai";
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import type { BrokerFailure } from "./types.ts";

export interface ChatRequest {
  baseUrl: string;
  apiKey: string;
  body: ChatCompletionCreateParamsNonStreaming;
  timeoutMs: number;
}

export type ChatResponse = { ok: true; completion: ChatCompletion } | { ok: false; failure: BrokerFailure };

export interface ModelTransport {
  complete(request: ChatRequest, signal?: AbortSignal): Promise<ChatResponse>;
  close(): Promise<void>;
}

function headerMs(headers: Headers | undefined, wallNow: () => number): number | undefined {
  if (headers === undefined || typeof headers.get !== "function") return undefined;
  const msHeader = headers.get("retry-after-ms");
  const ms = Number(msHeader);
  if (msHeader !== null && Number.isFinite(ms) && ms >= 0) return ms;
  const ra = headers.get("retry-after");
  if (ra === null) return undefined;
  const secs = Number(ra);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - wallNow());
}

/** Maps whatever the SDK threw onto the broker's typed failures. */
export function classifyError(err: unknown, wallNow: () => number = Date.now): BrokerFailure {
  if (err instanceof APIConnectionTimeoutError) return { code: "timeout", message: "the model did not answer in time" };
  if (err instanceof APIUserAbortError) return { code: "aborted", message: "the call was cancelled" };
  if (err instanceof RateLimitError) {
    const retryAfterMs = headerMs(err.headers, wallNow);
    return {
      code: "rate_limited",
      message: `rate limited by the provider (429)${retryAfterMs !== undefined ? `, retry after ${Math.ceil(retryAfterMs / 1000)}s` : ""}`,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }
  if (err instanceof AuthenticationError || err instanceof PermissionDeniedError) {
    return { code: "auth_error", message: `the provider refused the key (${err.status})` };
  }
  if (err instanceof APIConnectionError) return { code: "connection_error", message: "could not reach the model endpoint" };
  if (err instanceof APIError) {
    const status = err.status;
    const retryAfterMs = headerMs(err.headers as Headers | undefined, wallNow);
    if (typeof status === "number" && status >= 500) {
      return { code: "server_error", message: `the provider failed (${status})`, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    }
    return { code: "http_error", message: `the provider rejected the request (${status ?? "?"}): ${err.message.slice(0, 120)}` };
  }
  return { code: "broker_error", message: `unexpected error: ${String(err).slice(0, 120)}` };
}

/** The SDK on this thread: one client per endpoint and key, shared by every broker using it. */
export class InProcessTransport implements ModelTransport {
  private readonly clients = new Map<string, OpenAI>();
  private readonly fetchImpl: typeof fetch | undefined;

  constructor(options: { fetch?: typeof fetch } = {}) {
    this.fetchImpl = options.fetch;
  }

  private client(baseUrl: string, apiKey: string): OpenAI {
    const key = `${baseUrl}\u0000${apiKey}`;
    let c = this.clients.get(key);
    if (c === undefined) {
      // The SDK must not retry on its own: the session loop decides when to ask again.
      c = new OpenAI({ apiKey, baseURL: baseUrl, maxRetries: 0, logLevel: "off", ...(this.fetchImpl !== undefined ? { fetch: this.fetchImpl } : {}) });
      this.clients.set(key, c);
    }
    return c;
  }

  async complete(request: ChatRequest, signal?: AbortSignal): Promise<ChatResponse> {
    try {
      const completion = await this.client(request.baseUrl, request.apiKey).chat.completions.create(request.body, {
        timeout: request.timeoutMs,
        maxRetries: 0,
        signal: signal ?? null,
      });
      return { ok: true, completion };
    } catch (err) {
      return { ok: false, failure: classifyError(err) };
    }
  }

  async close(): Promise<void> {
    this.clients.clear();
  }
}
