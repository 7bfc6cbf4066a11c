import { expect } from "chai";
import { decisionResponseFormat, decisionSchema } from "../../keeper/brokers/decision-schema.ts";
import { RFQ_MAX_WHITELIST } from "../../keeper/core/commands.ts";

describe("brokers/decision-schema rfq", () => {
  const base = { orders: [], cancels: [], outcry: "", plan: null };
  const none = { pair: null, side: null, size: null, limit: null, ttlSec: null, requestId: null, quoteId: null, price: null, minFill: null, remainder: null, whitelist: null };
  const flat = { ...none, action: "quote", size: 5, ttlSec: 10, requestId: 12, price: 10_004 };
  const request = { ...none, action: "request", pair: "PEPE/USDC", side: "buy", size: 10, minFill: 4, remainder: "drop", whitelist: [11, 12] };

  it("takes flat rfq actions, null, or none at all", () => {
    expect(decisionSchema.safeParse({ ...base, rfq: [flat] }).success).to.equal(true);
    expect(decisionSchema.safeParse({ ...base, rfq: null }).success).to.equal(true);
    expect(decisionSchema.safeParse(base).success).to.equal(true);
  });

  it("takes a request with minFill, remainder and a whitelist of account ids, and lock / unlock by request id", () => {
    expect(decisionSchema.safeParse({ ...base, rfq: [request] }).success).to.equal(true);
    expect(decisionSchema.safeParse({ ...base, rfq: [{ ...none, action: "lock", requestId: 12 }, { ...none, action: "unlock", requestId: 12 }] }).success).to.equal(true);
  });

  it("refuses unknown actions, fractional prices and more than 5 actions", () => {
    expect(decisionSchema.safeParse({ ...base, rfq: [{ ...flat, action: "steal" }] }).success).to.equal(false);
    expect(decisionSchema.safeParse({ ...base, rfq: [{ ...flat, price: 10.5 }] }).success).to.equal(false);
    expect(decisionSchema.safeParse({ ...base, rfq: Array(6).fill(flat) }).success).to.equal(false);
  });

  it("refuses a bad minFill, remainder or whitelist", () => {
    for (const bad of [{ minFill: 0 }, { minFill: 2.5 }, { remainder: "half" }, { whitelist: [1.5] }, { whitelist: [-1] }, { whitelist: ["0xabc"] }, { whitelist: Array(RFQ_MAX_WHITELIST + 1).fill(7) }]) {
      expect(decisionSchema.safeParse({ ...base, rfq: [{ ...request, ...bad }] }).success, JSON.stringify(bad)).to.equal(false);
    }
  });

  it("stays flat on the wire: one object level, every field required and nullable (strict structured outputs)", () => {
    const rfq = (decisionResponseFormat.json_schema.schema as any).properties.rfq;
    const item = rfq.anyOf.find((x: any) => x.type === "array").items;
    expect(Object.keys(item.properties)).to.deep.equal(["action", "pair", "side", "size", "limit", "ttlSec", "requestId", "quoteId", "price", "minFill", "remainder", "whitelist"]);
    expect(item.required).to.deep.equal(Object.keys(item.properties));
    expect(item.properties.action.enum).to.deep.equal(["request", "quote", "accept", "cancel", "lock", "unlock"]);
    for (const [k, v] of Object.entries(item.properties) as [string, any][]) {
      const types = [v.type, ...(v.anyOf ?? []).map((x: any) => x.type)].flat();
      expect(types).to.not.include("object");
      if (k !== "action") expect(types, k).to.include("null");
    }
    // The whitelist is a flat list of integers, nothing nested.
    const wl = item.properties.whitelist;
    const list = (wl.anyOf ?? [wl]).find((x: any) => x.type === "array" || (Array.isArray(x.type) && x.type.includes("array")));
    expect(list.items.type).to.equal("integer");
  });
});
