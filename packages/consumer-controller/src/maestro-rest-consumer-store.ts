import { assertValidConsumerName } from "./consumer-name.js";
import type { ConsumerRow, ConsumerStore, DeleteConsumerResult, EnsureConsumerResult } from "./consumer-store.js";
import { ConsumerControllerError } from "./errors.js";

/** Options of {@link MaestroRestConsumerStore}. */
export interface MaestroRestConsumerStoreOptions {
  /** Maestro's HTTP server, e.g. `http://maestro:8000` (the `/api/maestro/v1/…` paths are appended). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` when Maestro runs with JWT authentication. */
  token?: string;
  /** A `fetch` implementation; default Node's global `fetch`. */
  fetch?: typeof fetch;
  /** Per-request timeout, so a hung Maestro cannot pin a cluster's reconcile. Default 10 s. */
  requestTimeoutMs?: number;
}

/** The consumer collection of Maestro's REST API (`[M] cmd/maestro/server/routes.go`). */
export const MAESTRO_CONSUMERS_PATH = "/api/maestro/v1/consumers";
/** The resource-bundle collection, read only to count a kept consumer's resources. */
export const MAESTRO_RESOURCE_BUNDLES_PATH = "/api/maestro/v1/resource-bundles";
/** Maestro's error code of `errors.Forbidden`, which its consumer delete returns for an FK violation. */
const FORBIDDEN_CODE = "maestro-4";

/** `openapi.Consumer` as Maestro presents it (`[M] pkg/api/presenters/consumer.go`). */
interface RestConsumer {
  id?: unknown;
  name?: unknown;
  labels?: unknown;
  created_at?: unknown;
  updated_at?: unknown;
}

/**
 * A {@link ConsumerStore} that goes through Maestro's consumer REST API instead of its database
 * (maestro-db.md §7), for deployments where a Maestro URL is configured:
 * - find: `GET /api/maestro/v1/consumers?search=name='<name>'` (the REST list includes soft-deleted
 *   rows, and their representation has no `deleted_at`, so any match counts as existing);
 * - create: `POST /api/maestro/v1/consumers` with `{"name": …}` → 201. A 409 (unique violation:
 *   another writer won) is answered by reading the winner's consumer;
 * - delete: `DELETE /api/maestro/v1/consumers/{id}` → 204 (a hard delete). A 403 with code
 *   `maestro-4` is Maestro's FK refusal (resources reference the consumer): the consumer is `kept`,
 *   and its resources are counted with `GET /api/maestro/v1/resource-bundles?search=consumer_name='<name>'`
 *   (best effort; `null` if that fails).
 *
 * Names are validated before any request, so they are safe inside the `search` expression.
 * Connection failures, timeouts and 5xx are `maestro-unavailable`; any other unexpected answer
 * (401, a 403 that is not the FK refusal, a body that is no JSON) is `maestro-error`.
 */
export class MaestroRestConsumerStore implements ConsumerStore {
  private readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly fetch: typeof fetch;
  private readonly requestTimeoutMs: number;

  /** @throws ConsumerControllerError `maestro-error` if `baseUrl` is not an http(s) URL. */
  constructor(options: MaestroRestConsumerStoreOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch (err) {
      throw new ConsumerControllerError("maestro-error", `Maestro URL ${JSON.stringify(options.baseUrl)} is not a URL`, { cause: err });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new ConsumerControllerError("maestro-error", `Maestro URL ${JSON.stringify(options.baseUrl)} is not http(s)`);
    }
    this.baseUrl = url.toString().replace(/\/+$/, "");
    this.token = options.token;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  }

  /** The consumer named `name`, or `undefined`. */
  async findByName(name: string): Promise<ConsumerRow | undefined> {
    assertValidConsumerName(name);
    const query = new URLSearchParams({ search: `name='${name}'`, size: "1" });
    const { status, body } = await this.request("GET", `${MAESTRO_CONSUMERS_PATH}?${query}`, `reading consumer "${name}"`);
    if (status !== 200) throw unexpected(status, body, `reading consumer "${name}"`);
    const items = (body as { items?: unknown } | null)?.items;
    if (!Array.isArray(items)) throw new ConsumerControllerError("maestro-error", `reading consumer "${name}": the answer has no items list`);
    const match = (items as RestConsumer[]).find((c) => c?.name === name);
    return match === undefined ? undefined : toRow(match, `reading consumer "${name}"`);
  }

  /** Find, else `POST`; a 409 means another writer created it first, whose consumer is returned. */
  async ensureConsumer(name: string): Promise<EnsureConsumerResult> {
    assertValidConsumerName(name);
    const found = await this.findByName(name);
    if (found !== undefined) return { outcome: "exists", consumer: found };
    const what = `creating consumer "${name}"`;
    const { status, body } = await this.request("POST", MAESTRO_CONSUMERS_PATH, what, { name });
    if (status === 201 || status === 200) return { outcome: "created", consumer: toRow(body as RestConsumer, what) };
    if (status === 409) {
      const winner = await this.findByName(name);
      if (winner !== undefined) return { outcome: "exists", consumer: winner };
      throw new ConsumerControllerError("maestro-error", `${what}: 409 Conflict, but no consumer of that name is listed; retrying later`);
    }
    throw unexpected(status, body, what);
  }

  /** Find, then `DELETE /consumers/{id}`; a 403 `maestro-4` (FK violation) keeps it. */
  async deleteConsumer(name: string): Promise<DeleteConsumerResult> {
    assertValidConsumerName(name);
    const found = await this.findByName(name);
    if (found === undefined) return { outcome: "absent" };
    const what = `deleting consumer "${name}"`;
    const { status, body } = await this.request("DELETE", `${MAESTRO_CONSUMERS_PATH}/${encodeURIComponent(found.id)}`, what);
    if (status === 204 || status === 200) return { outcome: "deleted", consumerId: found.id };
    if (status === 404) return { outcome: "absent" };
    if (status === 403 && (body as { code?: unknown } | null)?.code === FORBIDDEN_CODE) {
      return { outcome: "kept", reason: "has-resources", consumerId: found.id, resources: await this.countResources(name).catch(() => null) };
    }
    throw unexpected(status, body, what);
  }

  /** `total` of the resource bundles whose `consumer_name` is `name` (Maestro counts soft-deleted ones too). */
  async countResources(name: string): Promise<number> {
    assertValidConsumerName(name);
    const what = `counting resources of consumer "${name}"`;
    const query = new URLSearchParams({ search: `consumer_name='${name}'`, size: "1" });
    const { status, body } = await this.request("GET", `${MAESTRO_RESOURCE_BUNDLES_PATH}?${query}`, what);
    const total = (body as { total?: unknown } | null)?.total;
    if (status !== 200 || typeof total !== "number") throw unexpected(status, body, what);
    return total;
  }

  private async request(method: string, path: string, what: string, json?: unknown): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (json !== undefined) headers["content-type"] = "application/json";
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let response: Response;
    let text: string;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, {
        method, headers, body: json === undefined ? undefined : JSON.stringify(json), signal: AbortSignal.timeout(this.requestTimeoutMs),
      });
      text = await response.text();
    } catch (err) {
      const cause = (err as { cause?: { code?: unknown } } | null)?.cause?.code ?? (err as Error)?.name;
      throw new ConsumerControllerError("maestro-unavailable", `${what}: Maestro unreachable (${String(cause)}): ${String(err)}`, { cause: err });
    }
    if (response.status >= 500) {
      throw new ConsumerControllerError("maestro-unavailable", `${what}: Maestro answered ${response.status}: ${text.slice(0, 300)}`);
    }
    let body: unknown = null;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new ConsumerControllerError("maestro-error", `${what}: Maestro answered ${response.status} with a body that is no JSON: ${text.slice(0, 300)}`, { cause: err });
      }
    }
    return { status: response.status, body };
  }
}

function unexpected(status: number, body: unknown, what: string): ConsumerControllerError {
  const reason = (body as { reason?: unknown } | null)?.reason;
  const code = (body as { code?: unknown } | null)?.code;
  const detail = typeof reason === "string" ? `${String(code)}: ${reason.slice(0, 300)}` : JSON.stringify(body)?.slice(0, 300);
  return new ConsumerControllerError("maestro-error", `${what}: Maestro answered ${status} (${detail})`);
}

function toRow(c: RestConsumer | null | undefined, what: string): ConsumerRow {
  if (typeof c?.id !== "string" || typeof c.name !== "string") {
    throw new ConsumerControllerError("maestro-error", `${what}: the answer is not a consumer: ${JSON.stringify(c)?.slice(0, 300)}`);
  }
  const date = (v: unknown) => (typeof v === "string" ? new Date(v) : null);
  const labels = c.labels !== null && typeof c.labels === "object" && Object.keys(c.labels).length > 0 ? (c.labels as Record<string, string>) : null;
  return { id: c.id, name: c.name, labels, createdAt: date(c.created_at), updatedAt: date(c.updated_at), deletedAt: null };
}
