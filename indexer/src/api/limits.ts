// What one GraphQL request may cost. Every POST is read (at most maxBodyBytes), parsed (at most
// maxTokens) and measured before Ponder executes it; a query over a limit is refused with 400 and
// a message naming the limit, in GraphQL's error shape, without touching the database:
//
//   depth       fields nested deeper than maxDepth (the root field is depth 1)
//   aliases     more than maxAliases aliased fields (fragments counted where they are spread)
//   nesting     a list (a Ponder page: a field selecting items, pageInfo or totalCount) inside
//               more than maxListNesting - 1 other lists
//   rows        more than maxRows rows in all: each list may return its `limit` (Ponder's default
//               50, at most 1000) rows for every row of the lists around it
//
// Ponder's own limits (graphql-armor: tokens, depth, aliases) stay on behind this as a backstop.
// What passes runs with a deadline: after timeoutMs the client gets 503 and the connection is
// free; at most maxConcurrent queries execute at once, the rest are answered 503 at once, so
// requests that time out cannot pile up behind the database.
import { Kind, parse, type DocumentNode, type FieldNode, type FragmentDefinitionNode, type OperationDefinitionNode, type SelectionSetNode } from "graphql";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";

export interface GraphqlLimits {
  maxBodyBytes: number;
  maxTokens: number;
  maxDepth: number;
  maxAliases: number;
  maxListNesting: number;
  maxRows: number;
  timeoutMs: number;
  maxConcurrent: number;
}

export const GRAPHQL_LIMITS: GraphqlLimits = {
  maxBodyBytes: 16 * 1024,
  maxTokens: 1_000,
  maxDepth: 8,
  maxAliases: 10,
  maxListNesting: 2,
  maxRows: 5_000,
  timeoutMs: 10_000,
  maxConcurrent: 16,
};

/** Ponder's page size when a list names no limit, and the most it serves (ponder/src/graphql). */
const DEFAULT_PAGE = 50;
const MAX_PAGE = 1_000;
/** Selections visited while measuring: fragments spread into fragments cannot make it explode. */
const MAX_VISITS = 10_000;
const PAGE_FIELDS = new Set(["items", "pageInfo", "totalCount"]);

export type GraphqlRefusalCode = "BAD_REQUEST" | "PAYLOAD_TOO_LARGE" | "QUERY_TOO_COMPLEX" | "TIMEOUT" | "BUSY";

/** Why a request is not executed (the body is GraphQL's `{ errors: [...] }`). */
export interface GraphqlRefusal {
  status: 400 | 413 | 503;
  code: GraphqlRefusalCode;
  message: string;
}

/** What measuring a query found (for tests and logs). */
export interface QueryCost {
  depth: number;
  aliases: number;
  listNesting: number;
  rows: number;
}

class Refused extends Error {
  constructor(readonly refusal: GraphqlRefusal) {
    super(refusal.message);
  }
}

const tooComplex = (message: string) => new Refused({ status: 400, code: "QUERY_TOO_COMPLEX", message });
const badRequest = (message: string): GraphqlRefusal => ({ status: 400, code: "BAD_REQUEST", message });

/** Measures a GraphQL request body ({ query, variables }); returns the refusal, or null and its cost. */
export function checkGraphqlRequest(body: unknown, limits: GraphqlLimits = GRAPHQL_LIMITS): { refusal: GraphqlRefusal } | { refusal: null; cost: QueryCost } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { refusal: badRequest("send one GraphQL request as a JSON object { query, variables, operationName } (no batches)") };
  }
  const { query, variables } = body as { query?: unknown; variables?: unknown };
  if (typeof query !== "string") return { refusal: badRequest("query must be a string") };
  if (variables !== undefined && variables !== null && (typeof variables !== "object" || Array.isArray(variables))) {
    return { refusal: badRequest("variables must be an object") };
  }
  let doc: DocumentNode;
  try {
    doc = parse(query, { maxTokens: limits.maxTokens, noLocation: true });
  } catch (error) {
    const message = (error as Error).message;
    // graphql-js 16: "Document contains more that N tokens. Parsing aborted." (sic)
    return /more th\w+ \d+ tokens/i.test(message)
      ? { refusal: { status: 400, code: "QUERY_TOO_COMPLEX", message: `query has more than ${limits.maxTokens} tokens` } }
      : { refusal: badRequest(message) };
  }
  try {
    return { refusal: null, cost: measure(doc, (variables ?? {}) as Record<string, unknown>, limits) };
  } catch (error) {
    if (error instanceof Refused) return { refusal: error.refusal };
    throw error;
  }
}

function measure(doc: DocumentNode, variables: Record<string, unknown>, limits: GraphqlLimits): QueryCost {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of doc.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const cost: QueryCost = { depth: 0, aliases: 0, listNesting: 0, rows: 0 };
  let visits = 0;

  const visit = () => {
    if (++visits > MAX_VISITS) throw tooComplex(`query is too complex to measure (more than ${MAX_VISITS} selections with fragments expanded)`);
  };

  /** The selections of `set` with fragments expanded (one level), guarding against cycles. */
  const fieldsOf = (set: SelectionSetNode, spread: ReadonlySet<string>): { field: FieldNode; spread: ReadonlySet<string> }[] => {
    const out: { field: FieldNode; spread: ReadonlySet<string> }[] = [];
    for (const s of set.selections) {
      visit();
      if (s.kind === Kind.FIELD) out.push({ field: s, spread });
      else if (s.kind === Kind.INLINE_FRAGMENT) out.push(...fieldsOf(s.selectionSet, spread));
      else {
        const name = s.name.value;
        if (spread.has(name)) throw tooComplex(`fragment ${name} spreads itself`);
        const f = fragments.get(name);
        if (f !== undefined) out.push(...fieldsOf(f.selectionSet, new Set([...spread, name])));
      }
    }
    return out;
  };

  const walk = (op: OperationDefinitionNode, set: SelectionSetNode, spread: ReadonlySet<string>, depth: number, lists: number, rowsPerParent: number) => {
    for (const { field, spread: inner } of fieldsOf(set, spread)) {
      const d = depth + 1;
      if (d > cost.depth) cost.depth = d;
      if (d > limits.maxDepth) throw tooComplex(`query is nested ${d} fields deep; the limit is ${limits.maxDepth}`);
      if (field.alias !== undefined && ++cost.aliases > limits.maxAliases) {
        throw tooComplex(`query has more than ${limits.maxAliases} aliases`);
      }
      if (field.selectionSet === undefined) continue;
      const children = fieldsOf(field.selectionSet, inner);
      if (!children.some((c) => PAGE_FIELDS.has(c.field.name.value))) {
        walk(op, field.selectionSet, inner, d, lists, rowsPerParent);
        continue;
      }
      const nesting = lists + 1;
      if (nesting > cost.listNesting) cost.listNesting = nesting;
      if (nesting > limits.maxListNesting) {
        throw tooComplex(`list ${field.name.value} is nested inside ${lists} other lists; the limit is ${limits.maxListNesting} lists deep`);
      }
      const rows = rowsPerParent * pageSize(op, field, variables);
      cost.rows += rows;
      if (cost.rows > limits.maxRows) {
        throw tooComplex(`query may return more than ${limits.maxRows} rows (lists multiply: each list's limit, default ${DEFAULT_PAGE}, per row of the lists around it)`);
      }
      walk(op, field.selectionSet, inner, d, nesting, rows);
    }
  };

  for (const def of doc.definitions) {
    if (def.kind === Kind.OPERATION_DEFINITION) walk(def, def.selectionSet, new Set(), 0, 0, 1);
  }
  return cost;
}

/** The rows a list field may return: its limit argument (literal, variable or the variable's default), else Ponder's default. */
function pageSize(op: OperationDefinitionNode, field: FieldNode, variables: Record<string, unknown>): number {
  const arg = field.arguments?.find((a) => a.name.value === "limit")?.value;
  let n: unknown = undefined;
  if (arg?.kind === Kind.INT) n = Number(arg.value);
  else if (arg?.kind === Kind.VARIABLE) {
    const name = arg.name.value;
    n = variables[name];
    if (n === undefined) {
      const fallback = op.variableDefinitions?.find((v) => v.variable.name.value === name)?.defaultValue;
      if (fallback?.kind === Kind.INT) n = Number(fallback.value);
    }
  } else if (arg !== undefined && arg.kind !== Kind.NULL) n = MAX_PAGE;
  if (typeof n !== "number" || !Number.isFinite(n)) return DEFAULT_PAGE;
  return Math.min(Math.max(Math.trunc(n), 0), MAX_PAGE);
}

const refuse = (c: Context, r: GraphqlRefusal) => c.json({ errors: [{ message: r.message, extensions: { code: r.code } }] }, r.status);

/**
 * Wraps Ponder's graphql() middleware: GET passes through (GraphiQL), POST is limited as above.
 * Use it for every path the GraphQL endpoint is served on.
 */
export function limitedGraphql(execute: MiddlewareHandler, limits: GraphqlLimits = GRAPHQL_LIMITS): MiddlewareHandler[] {
  let running = 0;
  const sizeLimit = bodyLimit({
    maxSize: limits.maxBodyBytes,
    onError: (c) => refuse(c, { status: 413, code: "PAYLOAD_TOO_LARGE", message: `request body is larger than ${limits.maxBodyBytes} bytes` }),
  });
  const guard: MiddlewareHandler = async (c, next) => {
    if (c.req.method !== "POST") return execute(c, next);
    let body: unknown;
    const text = await c.req.text();
    try {
      body = JSON.parse(text);
    } catch {
      return refuse(c, badRequest("the body must be JSON: { query, variables, operationName }"));
    }
    const checked = checkGraphqlRequest(body, limits);
    if (checked.refusal !== null) return refuse(c, checked.refusal);
    if (running >= limits.maxConcurrent) {
      return refuse(c, { status: 503, code: "BUSY", message: `${limits.maxConcurrent} queries are running: retry shortly` });
    }
    // The body was read here: Ponder gets the same request again, with its body.
    const headers = new Headers(c.req.raw.headers);
    headers.delete("content-length");
    c.req.raw = new Request(c.req.raw.url, { method: "POST", headers, body: text });
    running++;
    const execution = Promise.resolve(execute(c, next)).finally(() => running--);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), limits.timeoutMs)));
    try {
      const result = await Promise.race([execution, deadline]);
      if (result === "timeout") {
        execution.catch(() => {});
        return refuse(c, { status: 503, code: "TIMEOUT", message: `query did not finish within ${limits.timeoutMs} ms` });
      }
      return result ?? c.res;
    } finally {
      clearTimeout(timer);
    }
  };
  return [sizeLimit, guard];
}
