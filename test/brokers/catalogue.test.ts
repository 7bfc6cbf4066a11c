import { expect } from "chai";
import { catalogue, CatalogueError, loadCatalogueFile, parseCatalogue, publicEntry, type AiEntry } from "../../keeper/brokers/catalogue.ts";

const ai = (entries: ReturnType<typeof catalogue>, id: string) => entries.find((e) => e.id === id) as AiEntry;

describe("brokers/catalogue", () => {
  const file = loadCatalogueFile();

  it("ships OpenAI, OpenRouter, a local endpoint and the four rule-based brokers", () => {
    const ids = file.entries.map((e) => e.id);
    expect(ids).to.include.members(["openai-gpt5", "openrouter-claude", "local-llm", "rule-market-maker", "rule-momentum", "rule-mean-reversion", "rule-scalper"]);
    for (const e of file.entries) {
      if (e.kind === "ai") expect(e.tiers.cheap.model, e.id).to.be.a("string").and.not.empty;
    }
  });

  it("reports AI entries without their key as unavailable, naming the variable, and keeps rule brokers available", () => {
    const entries = catalogue({}, file);
    const openai = ai(entries, "openai-gpt5");
    expect(openai.available).to.equal(false);
    expect(openai.reason).to.equal("OPENAI_API_KEY is not set");
    expect(openai.apiKey).to.equal(undefined);
    expect(ai(entries, "local-llm").reason).to.equal("CME_LOCAL_BASE_URL is not set");
    for (const e of entries.filter((x) => x.kind === "rule")) {
      expect(e.available).to.equal(true);
      expect(e.kind === "rule" && e.label).to.equal("rule-based");
    }
  });

  it("makes an entry available with its key and takes the base URL override from the environment", () => {
    const entries = catalogue({ OPENAI_API_KEY: "sk-test", CME_OPENAI_BASE_URL: "http://127.0.0.1:9999/v1/" }, file);
    const e = ai(entries, "openai-gpt5");
    expect(e.available).to.equal(true);
    expect(e.apiKey).to.equal("sk-test");
    expect(e.baseUrl).to.equal("http://127.0.0.1:9999/v1");
  });

  it("enables the local entry by its base URL, with a placeholder key and a model override", () => {
    const e = ai(catalogue({ CME_LOCAL_BASE_URL: "http://127.0.0.1:11434/v1", CME_LOCAL_MODEL: "llama3.1:8b" }, file), "local-llm");
    expect(e.available).to.equal(true);
    expect(e.apiKey).to.equal("local");
    expect(e.tiers.cheap.model).to.equal("llama3.1:8b");
    expect(e.tiers.expensive.model).to.equal("llama3.1:8b");
  });

  it("turns USD prices into exact integer micro-USD per million tokens and the cap into pico-USD", () => {
    const e = ai(catalogue({ OPENAI_API_KEY: "k" }, file), "openai-gpt5");
    expect(e.tiers.cheap.prices.inputMicroUsdPerMTok).to.equal(250_000n);
    expect(e.tiers.cheap.prices.cachedInputMicroUsdPerMTok).to.equal(25_000n);
    expect(e.spendCapPicoUsd).to.equal(500_000_000_000n);
  });

  it("never exposes a key in the public view", () => {
    const entries = catalogue({ OPENAI_API_KEY: "sk-secret" }, file);
    const text = JSON.stringify(entries.map(publicEntry));
    expect(text).not.to.contain("sk-secret");
    const pub = publicEntry(ai(entries, "openai-gpt5"));
    expect(pub).to.include({ available: true, label: "AI · OpenAI", keyEnv: "OPENAI_API_KEY", spendCapUsd: 0.5 });
  });

  it("names the bad field when the file is wrong", () => {
    const bad = structuredClone(file) as { entries: Record<string, unknown>[] };
    (bad.entries[0] as { tiers: { cheap: { model: string } } }).tiers.cheap.model = "";
    bad.entries.push({ id: "rule-x", kind: "rule", displayName: "X", strategy: "astrology", description: "" });
    try {
      parseCatalogue(bad);
      expect.fail("should throw");
    } catch (err) {
      expect(err).to.be.instanceOf(CatalogueError);
      const issues = (err as CatalogueError).issues.join("\n");
      expect(issues).to.contain("entries.0.tiers.cheap.model");
      expect(issues).to.contain("entries.9.strategy");
    }
  });

  it("refuses duplicate ids", () => {
    const dup = structuredClone(file);
    dup.entries.push(dup.entries[0]!);
    expect(() => parseCatalogue(dup)).to.throw(CatalogueError, /unique/);
  });
});
