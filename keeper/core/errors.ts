// Errors the core throws. Normal rejections are never thrown (see types.ts RejectCode); these
// mean the caller or the core itself is broken.

/** A command or configuration that is malformed: a keeper bug, not a market event. */
export class CoreInputError extends Error {
  override readonly name = "CoreInputError";
  readonly field: string;
  readonly details: unknown;
  constructor(field: string, message: string, details?: unknown) {
    super(`${field}: ${message}`);
    this.field = field;
    this.details = details;
  }
}

/** A broken invariant (conservation, crossed book, negative final balance): a core bug. */
export class InvariantError extends Error {
  override readonly name = "InvariantError";
  readonly details: unknown;
  constructor(message: string, details?: unknown) {
    super(message);
    this.details = details;
  }
}
