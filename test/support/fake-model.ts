// A local OpenAI-compatible chat endpoint for tests: every reply is a valid broker decision that
// crosses the book (buy IOC above the reference, then sell IOC below it), so sessions have fills
// through the real AI-broker path (openai SDK, schema validation, executor rules).
import { createServer, type Server } from "node:http";

export async function startFakeModel(): Promise<{ url: string; calls: () => number; close(): Promise<void> }> {
  let n = 0;
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += String(d)));
    req.on("end", () => {
      n++;
      const buy = n % 2 === 0;
      const orders = [
        { pair: "PEPE/USDC", side: buy ? "buy" : "sell", price: buy ? 11_000 : 9_000, size: 1, type: "ioc" },
        { pair: "WIF/USDC", side: buy ? "buy" : "sell", price: buy ? 22_000 : 18_000, size: 1, type: "ioc" },
      ];
      const decision = { orders, cancels: [], outcry: buy ? "Lifting offers!" : "Hitting bids!", plan: null };
      const reply = {
        id: `chatcmpl-${n}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model: "fake-model",
        choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: JSON.stringify(decision), refusal: null } }],
        usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 },
      };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/v1`, calls: () => n, close: () => new Promise((r) => server.close(() => r())) };
}
