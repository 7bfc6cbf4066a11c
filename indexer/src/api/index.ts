// HTTP API: GraphQL for auditors and the UI, SQL over HTTP for @ponder/client (read-only queries
// against the same tables). Ponder itself serves /health, /ready, /status and /metrics.
import { db } from "ponder:api";
import schema from "ponder:schema";
import { Hono } from "hono";
import { client, graphql } from "ponder";

const app = new Hono();

app.use("/sql/*", client({ db, schema }));
app.use("/graphql", graphql({ db, schema }));
app.use("/", graphql({ db, schema }));

export default app;
