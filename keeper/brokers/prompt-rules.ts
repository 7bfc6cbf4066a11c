// What a strategy prompt or a re-prompt must be: one rule, used by the API's request schemas (a
// bad prompt is a 400 naming the field) and by the executor (which takes a re-prompt only if it
// passes), so a prompt the API accepts is always one the broker gets.

/** Longest prompt or re-prompt, in characters (UTF-16 code units, as JSON Schema's maxLength counts). */
export const PROMPT_MAX_CHARS = 2_000;

/** The JSON Schema of a prompt field: 1 to PROMPT_MAX_CHARS characters, not only whitespace. */
export const promptFieldSchema = {
  type: "string",
  minLength: 1,
  maxLength: PROMPT_MAX_CHARS,
  pattern: "\\S",
  description: `1 to ${PROMPT_MAX_CHARS} characters, not only whitespace`,
} as const;

export type PromptCheck = { ok: true; text: string } | { ok: false; reason: "empty" | "too_long"; message: string };

/** The prompt as the broker will get it (trimmed), or why it is refused. */
export function checkPrompt(text: string): PromptCheck {
  const t = text.trim();
  if (t === "") return { ok: false, reason: "empty", message: "the prompt is empty or only whitespace" };
  if (text.length > PROMPT_MAX_CHARS) return { ok: false, reason: "too_long", message: `the prompt has ${text.length} characters, at most ${PROMPT_MAX_CHARS} are taken` };
  return { ok: true, text: t };
}
