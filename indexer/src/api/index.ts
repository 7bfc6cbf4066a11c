// HTTP API: GraphQL for auditors and the UI, at /graphql and /, each POST measured and limited
// before it runs (./limits.ts: depth, aliases, nested lists, rows, body size, a deadline), so one
// query cannot hold the database from the others. No SQL over HTTP: clients read through GraphQL.
// Ponder itself serves /health, /ready, /status and /metrics.
import { db } from "ponder:api";
import schema from "ponder:schema";
import { Hono } from "hono";
import { graphql } from "ponder";
import { GRAPHQL_LIMITS, limitedGraphql } from "./limits.ts";

const app = new Hono();

// Ponder's own graphql-armor limits stay on as a backstop; they count a fragment as a level.
const ponderGraphql = graphql(
  { db, schema },
  {
    maxOperationTokens: GRAPHQL_LIMITS.maxTokens,
    maxOperationDepth: GRAPHQL_LIMITS.maxDepth + 2,
    maxOperationAliases: GRAPHQL_LIMITS.maxAliases,
  },
);

const limited = limitedGraphql(ponderGraphql);
app.use("/graphql", ...limited);
app.use("/", ...limited);

export default app;
