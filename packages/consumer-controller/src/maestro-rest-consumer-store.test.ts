import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { eventually, getFreePort } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConsumerController, type SyncResult } from "./consumer-controller.js";
import { ConsumerControllerError } from "./errors.js";
import { MaestroRestConsumerStore } from "./maestro-rest-consumer-store.js";

// There is no Maestro binary here, so these tests run against a double of Maestro's consumer REST
// API on a real loopback HTTP server: the routes, status codes and bodies of
// `[M] cmd/maestro/server/routes.go`, `pkg/handlers/consumer.go`, `pkg/services/{consumer,util}.go`
// and `pkg/errors/errors.go` (maestro-db.md §7), implemented only as far as the store uses them.

interface Consumer { id: string; name: string; created_at: string; updated_at: string }
const consumers = new Map<string, Consumer>(); // by name
const resources = new Map<string, number>(); // by consumer name
const requests: Array<{ method: string; url: string; auth: string | undefined }> = [];
/** Test hooks: answer the next requests with these statuses instead (e.g. 503), or run code before handling. */
let failNext: number[] = [];
let beforePost: ((name: string) => void) | undefined;
/** When set, requests without this bearer token get Maestro's 401 (JWT authentication on). */
let requiredToken: string | undefined;

const error = (res: ServerResponse, status: number, code: number, reason: string) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ kind: "Error", id: String(code), href: `/api/maestro/v1/errors/${code}`, code: `maestro-${code}`, reason, operation_id: "op" }));
};
const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};
const present = (c: Consumer) => ({ kind: "Consumer", href: `/api/maestro/v1/consumers/${c.id}`, ...c });
/** The store only ever sends `<field>='<value>'`; anything else is a 400 like Maestro's failed TSL parse. */
const searchValue = (search: string | null, field: string) => search?.match(new RegExp(`^${field}='([^']*)'$`))?.[1];

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let body = "";
  for await (const chunk of req) body += chunk;
  const url = new URL(req.url ?? "/", "http://x");
  requests.push({ method: req.method ?? "", url: `${url.pathname}${url.search}`, auth: req.headers.authorization });
  const forced = failNext.shift();
  if (forced !== undefined) return error(res, forced, 9, "Unspecified error");
  if (requiredToken !== undefined && req.headers.authorization !== `Bearer ${requiredToken}`) {
    return error(res, 401, 15, "Account authentication could not be verified");
  }
  if (url.pathname === "/api/maestro/v1/consumers" && req.method === "GET") {
    const name = searchValue(url.searchParams.get("search"), "name");
    if (name === undefined) return error(res, 400, 21, "Failed to parse search query");
    const items = consumers.has(name) ? [present(consumers.get(name)!)] : [];
    return json(res, 200, { kind: "ConsumerList", page: 1, size: items.length, total: items.length, items });
  }
  if (url.pathname === "/api/maestro/v1/consumers" && req.method === "POST") {
    const input = JSON.parse(body) as { name?: string; id?: string };
    if (input.id) return error(res, 400, 8, "id must be empty");
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(input.name ?? "")) return error(res, 500, 9, "Unable to create Consumer: invalid name");
    beforePost?.(input.name!);
    if (consumers.has(input.name!)) return error(res, 409, 6, "This Consumer already exists");
    const now = new Date().toISOString();
    const c = { id: randomUUID(), name: input.name!, created_at: now, updated_at: now };
    consumers.set(c.name, c);
    return json(res, 201, present(c));
  }
  const byId = url.pathname.match(/^\/api\/maestro\/v1\/consumers\/([^/]+)$/);
  if (byId && req.method === "DELETE") {
    const c = [...consumers.values()].find((x) => x.id === decodeURIComponent(byId[1]!));
    if (c !== undefined && (resources.get(c.name) ?? 0) > 0) {
      return error(res, 403, 4, 'Unable to delete Consumer: ERROR: update or delete on table "consumers" violates foreign key constraint ' +
        '"fk_resources_consumers" on table "resources" (SQLSTATE 23503)');
    }
    if (c !== undefined) consumers.delete(c.name);
    res.writeHead(204).end(); // also for an unknown id, as Maestro
    return;
  }
  if (url.pathname === "/api/maestro/v1/resource-bundles" && req.method === "GET") {
    const name = searchValue(url.searchParams.get("search"), "consumer_name");
    if (name === undefined) return error(res, 400, 21, "Failed to parse search query");
    const total = resources.get(name) ?? 0;
    return json(res, 200, { kind: "ResourceBundleList", page: 1, size: Math.min(total, 1), total, items: [] });
  }
  return error(res, 404, 7, "Resource not found");
}

let server: Server;
let baseUrl: string;
beforeAll(async () => {
  server = createServer((req, res) => void handle(req, res).catch((err: unknown) => error(res, 500, 9, String(err))));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  consumers.clear();
  resources.clear();
  requests.length = 0;
  failNext = [];
  beforePost = undefined;
  requiredToken = undefined;
});

async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ConsumerControllerError) return err.code;
    throw err;
  }
  throw new Error("expected a ConsumerControllerError");
}

describe("MaestroRestConsumerStore against a Maestro REST double on loopback", () => {
  it("creates a consumer with POST, then finds it with a name search", async () => {
    const store = new MaestroRestConsumerStore({ baseUrl });
    const created = await store.ensureConsumer("cluster1");
    expect(created.outcome).toBe("created");
    expect(created.consumer).toMatchObject({ id: consumers.get("cluster1")!.id, name: "cluster1", labels: null, deletedAt: null });
    expect(created.consumer.createdAt).toBeInstanceOf(Date);
    const again = await store.ensureConsumer("cluster1");
    expect(again).toEqual({ outcome: "exists", consumer: created.consumer });
    expect(requests.map((r) => `${r.method} ${decodeURIComponent(r.url)}`)).toEqual([
      "GET /api/maestro/v1/consumers?search=name='cluster1'&size=1",
      "POST /api/maestro/v1/consumers",
      "GET /api/maestro/v1/consumers?search=name='cluster1'&size=1",
    ]);
  });

  it("answers a 409 (another writer won the race) with the winner's consumer", async () => {
    const store = new MaestroRestConsumerStore({ baseUrl });
    let winner = "";
    beforePost = (name) => {
      const now = new Date().toISOString();
      winner = randomUUID();
      consumers.set(name, { id: winner, name, created_at: now, updated_at: now });
    };
    const result = await store.ensureConsumer("cluster1");
    expect(result.outcome).toBe("exists");
    expect(result.consumer.id).toBe(winner);
    expect(requests.map((r) => r.method)).toEqual(["GET", "POST", "GET"]);
  });

  it("deletes a consumer without resources, and keeps (403 maestro-4) one with resources, counting them", async () => {
    const store = new MaestroRestConsumerStore({ baseUrl });
    const { consumer } = await store.ensureConsumer("cluster1");
    await store.ensureConsumer("cluster2");
    resources.set("cluster2", 3);
    expect(await store.deleteConsumer("cluster1")).toEqual({ outcome: "deleted", consumerId: consumer.id });
    expect(await store.deleteConsumer("cluster1")).toEqual({ outcome: "absent" });
    expect(await store.deleteConsumer("cluster2")).toEqual({
      outcome: "kept", reason: "has-resources", consumerId: consumers.get("cluster2")!.id, resources: 3,
    });
    expect(consumers.has("cluster2")).toBe(true);
    expect(requests.some((r) => r.method === "DELETE" && r.url.endsWith(`/consumers/${consumer.id}`))).toBe(true);
  });

  it("sends the token; a 401 or a 403 that is not the FK refusal is maestro-error", async () => {
    requiredToken = "s3cret";
    expect(await codeOf(new MaestroRestConsumerStore({ baseUrl }).ensureConsumer("cluster1"))).toBe("maestro-error");
    const store = new MaestroRestConsumerStore({ baseUrl, token: "s3cret" });
    await store.ensureConsumer("cluster1");
    expect(requests.at(-1)?.auth).toBe("Bearer s3cret");
    const lookup = requests.length;
    // A 403 from the authorisation layer (maestro-11), not the consumer FK refusal:
    const forbidden = new MaestroRestConsumerStore({ baseUrl, token: "s3cret", fetch: async (input, init) => {
      if (init?.method === "DELETE") return new Response(JSON.stringify({ kind: "Error", code: "maestro-11", reason: "unauthorized" }), { status: 403 });
      return fetch(input, init);
    } });
    expect(await codeOf(forbidden.deleteConsumer("cluster1"))).toBe("maestro-error");
    expect(requests.length).toBe(lookup + 1);
  });

  it("reports 5xx, a timeout and a refused connection as maestro-unavailable, and refuses invalid names before any request", async () => {
    const store = new MaestroRestConsumerStore({ baseUrl });
    failNext = [503];
    expect(await codeOf(store.ensureConsumer("cluster1"))).toBe("maestro-unavailable");
    const closed = new MaestroRestConsumerStore({ baseUrl: `http://127.0.0.1:${await getFreePort()}` });
    expect(await codeOf(closed.ensureConsumer("cluster1"))).toBe("maestro-unavailable");
    const hung = createServer(() => {}); // accepts, never answers
    await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
    try {
      const slow = new MaestroRestConsumerStore({ baseUrl: `http://127.0.0.1:${(hung.address() as AddressInfo).port}`, requestTimeoutMs: 200 });
      expect(await codeOf(slow.deleteConsumer("cluster1"))).toBe("maestro-unavailable");
    } finally {
      hung.closeAllConnections();
      await new Promise((resolve) => hung.close(resolve));
    }
    const before = requests.length;
    for (const name of ["a.b", "x' or name='y", "A", ""]) expect(await codeOf(store.ensureConsumer(name))).toBe("invalid-name");
    expect(requests.length).toBe(before);
  });

  it("drives the controller in REST mode: retries 5xx with back-off, keeps a consumer with resources, deletes it once they are gone", async () => {
    const results: SyncResult[] = [];
    const controller = new ConsumerController({ maestro: { baseUrl }, initialBackoffMs: 20, maxBackoffMs: 40, onSync: (r) => results.push(r) });
    try {
      failNext = [500, 502];
      controller.upsert({ metadata: { name: "cluster1" }, status: { conditions: [{ type: "ManagedClusterJoined", status: "True" }] } });
      await eventually(() => results.some((r) => r.outcome === "created"), 5_000, "the consumer");
      expect(results.map((r) => (r.outcome === "failed" ? `${r.error.code} ${r.retryInMs}` : r.outcome)))
        .toEqual(["maestro-unavailable 20", "maestro-unavailable 40", "created"]);
      resources.set("cluster1", 1);
      controller.remove("cluster1");
      await eventually(() => results.some((r) => r.outcome === "kept"), 5_000, "the kept consumer");
      expect(results.find((r) => r.outcome === "kept")).toMatchObject({ reason: "has-resources", resources: 1 });
      resources.delete("cluster1");
      await eventually(() => results.some((r) => r.outcome === "deleted"), 5_000, "the delete");
      expect(consumers.size).toBe(0);
    } finally {
      await controller.stop();
    }
  });
});
