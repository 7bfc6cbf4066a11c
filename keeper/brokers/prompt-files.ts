// Prompts live as markdown files beside this module (prompts/), read once at startup.
import { readdirSync, readFileSync } from "node:fs";

const dir = new URL("./prompts/", import.meta.url);

const read = (name: string) => readFileSync(new URL(name, dir), "utf8").trim();

/** The fixed rules every AI broker gets first (identical across users, so providers can cache it). */
export const RULES_PROMPT = read("rules.md");

/** The instruction for the end-of-session lessons call. */
export const LESSONS_PROMPT = read("lessons.md");

export interface ExamplePrompt {
  id: string;
  title: string;
  /** Catalogue id the example was written for. */
  suggestedBroker: string;
  prompt: string;
}

function parseExample(id: string, text: string): ExamplePrompt {
  const lines = text.split("\n");
  const title = lines[0]?.replace(/^#\s*/, "").trim() ?? id;
  const suggested = lines.find((l) => l.startsWith("suggested:"))?.slice("suggested:".length).trim() ?? "rule-market-maker";
  const body = lines
    .slice(1)
    .filter((l) => !l.startsWith("suggested:"))
    .join("\n")
    .trim();
  return { id, title, suggestedBroker: suggested, prompt: body };
}

/** Starting points users can pick, from a timid market maker to a degenerate momentum chaser. */
export const EXAMPLE_PROMPTS: readonly ExamplePrompt[] = readdirSync(new URL("examples/", dir))
  .filter((f) => f.endsWith(".md"))
  .sort()
  .map((f) => parseExample(f.replace(/^\d+-|\.md$/g, ""), readFileSync(new URL(`examples/${f}`, dir), "utf8")));
