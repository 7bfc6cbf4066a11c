import { expect } from "chai";
import { decisionResponseFormat, decisionSchema } from "../../keeper/brokers/decision-schema.ts";

describe("brokers/decision-schema rfq", () => {
  const base = { orders: [], cancels: [], outcry: "", plan: null };
  const flat = { action: "quote", pair: null, side: null, size: 5, limit: null, ttlSec: 10, requestId: 12, quoteId: null, price: 10_004 };

  it("takes flat rfq actions, null, or none at all", () => {
    expect(decisionSchema.safeParse({ ...base, rfq: [flat] }).success).to.equal(true);
    expect(decisionSchema.safeParse({ ...base, rfq: null }).success).to.equal(true);
    expect(decisionSchema.safeParse(base).success).to.equal(true);
  });

  it("refuses unknown actions, fractional prices and more than 5 actions", () => {
    expect(decisionSchema.safeParse({ ...base, rfq: [{ ...flat, action: "lock" }] }).success).to.equal(false);
    expect(decisionSchema.safeParse({ ...base, rfq: [{ ...flat, price: 10.5 }] }).success).to.equal(false);
    expect(decisionSchema.safeParse({ ...base, rfq: Array(6).fill(flat) }).success).to.equal(false);
  });

  it("stays flat on the wire: one object level, every field required and nullable (strict structured outputs)", () => {
    const rfq = (decisionResponseFormat.json_schema.schema as any).properties.rfq;
    const item = rfq.anyOf.find((x: any) => x.type === "array").items;
    expect(Object.keys(item.properties)).to.deep.equal(["action", "pair", "side", "size", "limit", "ttlSec", "requestId", "quoteId", "price"]);
    expect(item.required).to.deep.equal(Object.keys(item.properties));
    for (const v of Object.values(item.properties) as any[]) expect(v.type === "object").to.equal(false);
  });
});
