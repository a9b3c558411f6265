import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { toJsonString } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CloudEventSchema, CloudEventService, DataTypes, HEARTBEAT_TYPE, toProto } from "@ocm-conductor/protocol";
import { ConfigError } from "../config-values.js";
import { parseGoDuration } from "../duration.js";
import { EventJsonError, parseEventJson } from "./event-json.js";
import { MaestroResourceInputError, ctlDatabase, ctlSql, maestroApply, maestroDelete, readBundleFile } from "./maestro-resource.js";

/** Where ctl writes. */
export interface CtlIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const USAGE = `Usage: conductor ctl <command> [flags]

Commands:
  subscribe --cluster C [--data-type T] [--count N] [--timeout DUR] [--heartbeats]
            prints each event as grpcurl would (protobuf JSON); T is a full data type or a short
            name: ${Object.keys(DataTypes).join(", ")} (default manifestBundles)
  publish -f FILE|-      publishes one CloudEvents JSON event (specversion, id, source, type, data, extensions)
  status [--admin URL]   readiness and live subscribers from the admin port (default http://127.0.0.1:8080)
  maestro apply -f FILE|- --cluster C [--id ID] [--source S]
            writes a Maestro resource (create, or update with --id) as Maestro does: resources row,
            events row, NOTIFY; FILE holds Kubernetes manifests (a list, one, or {manifests: [...]})
            in YAML or JSON. The cluster's consumer is created if missing. Prints the resource id.
  maestro delete --id ID   marks the resource deleting as Maestro does (its agent then deletes it)

Database flags (maestro):
  --database-url URL    else DATABASE_URL, else the embedded PostgreSQL of a running
  --data-dir DIR        \`conductor serve\` in DIR (default .data/pg)

Connection flags (subscribe, publish):
  --server URL          default http://127.0.0.1:8090 (https:// for TLS)
  --ca-file F --cert-file F --key-file F --token T --token-file F
`;

/** A ctl mistake: exit status 2 with usage. */
class CtlUsageError extends Error {}

/**
 * `conductor ctl`: the debugging client OCM operators lack — watch what the conductor sends a
 * cluster, publish an event by hand, and read the admin endpoints. Resolves with the exit code.
 */
export async function runCtl(argv: string[], io: CtlIo): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case "subscribe":
        return await subscribe(args, io);
      case "publish":
        return await publish(args, io);
      case "status":
        return await status(args, io);
      case "maestro":
        return await maestro(args, io);
      case undefined:
      case "help":
      case "--help":
        io.stdout(USAGE);
        return 0;
      default:
        throw new CtlUsageError(`unknown ctl command "${command}"`);
    }
  } catch (err) {
    if (err instanceof CtlUsageError || err instanceof EventJsonError || err instanceof MaestroResourceInputError || err instanceof ConfigError) {
      io.stderr(`conductor ctl: ${err.message}\n\n${err instanceof CtlUsageError ? USAGE : ""}`);
      return 2;
    }
    if (err instanceof ConnectError) {
      io.stderr(`conductor ctl: ${err.message}\n`);
      return 1;
    }
    io.stderr(`conductor ctl: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

const connectionOptions: Flags = {
  server: { type: "string", default: "http://127.0.0.1:8090" },
  "ca-file": { type: "string" },
  "cert-file": { type: "string" },
  "key-file": { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
};

type Flags = Record<string, { type: "string" | "boolean"; short?: string; default?: string | boolean }>;

function parse(args: string[], options: Flags): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new CtlUsageError((err as Error).message);
  }
}

async function clientFor(v: Record<string, unknown>) {
  const read = (key: string) => (typeof v[key] === "string" ? readFile(v[key] as string) : Promise.resolve(undefined));
  const [ca, cert, key, tokenFile] = await Promise.all([read("ca-file"), read("cert-file"), read("key-file"), read("token-file")]);
  const token = typeof v.token === "string" ? v.token : tokenFile?.toString("utf8").trim();
  const interceptors: Interceptor[] = token === undefined ? [] : [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))];
  const transport = createGrpcTransport({
    baseUrl: String(v.server),
    nodeOptions: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
    interceptors,
  });
  return createClient(CloudEventService, transport);
}

function dataTypeOf(value: string | undefined): string {
  if (value === undefined) return DataTypes.manifestBundles;
  const short = (DataTypes as Record<string, string>)[value];
  return short ?? value;
}

async function subscribe(args: string[], io: CtlIo): Promise<number> {
  const v = parse(args, {
    ...connectionOptions,
    cluster: { type: "string" },
    "data-type": { type: "string" },
    count: { type: "string" },
    timeout: { type: "string" },
    heartbeats: { type: "boolean", default: false },
  });
  if (typeof v.cluster !== "string" || v.cluster === "") throw new CtlUsageError("subscribe needs --cluster");
  const count = v.count === undefined ? Infinity : Number(v.count);
  if (count !== Infinity && (!Number.isInteger(count) || count < 1)) throw new CtlUsageError("--count must be a positive integer");
  const timeoutMs = v.timeout === undefined ? undefined : parseGoDuration(String(v.timeout));
  if (v.timeout !== undefined && timeoutMs === undefined) throw new CtlUsageError(`--timeout: invalid duration "${String(v.timeout)}"`);
  const client = await clientFor(v);
  const abort = new AbortController();
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => abort.abort(), timeoutMs);
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  let seen = 0;
  try {
    const stream = client.subscribe({ clusterName: v.cluster, dataType: dataTypeOf(v["data-type"] as string | undefined) }, {
      signal: abort.signal,
      onHeader: (h) => io.stderr(`subscription-id: ${h.get("subscription-id") ?? "(none)"}\n`),
    });
    for await (const message of stream) {
      if (message.type === HEARTBEAT_TYPE && v.heartbeats !== true) continue;
      io.stdout(`${toJsonString(CloudEventSchema, message, { prettySpaces: 2 })}\n`);
      if (message.type !== HEARTBEAT_TYPE && ++seen >= count) break;
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    process.off("SIGINT", stop);
  }
  return 0;
}

async function publish(args: string[], io: CtlIo): Promise<number> {
  const v = parse(args, { ...connectionOptions, file: { type: "string", short: "f" } });
  if (typeof v.file !== "string") throw new CtlUsageError("publish needs -f FILE (or -f - for standard input)");
  const text = v.file === "-" ? await readStdin() : await readFile(v.file, "utf8");
  const event = parseEventJson(text);
  await (await clientFor(v)).publish({ event: toProto(event) });
  io.stdout(`published ${event.type} id=${event.id}\n`);
  return 0;
}

async function status(args: string[], io: CtlIo): Promise<number> {
  const v = parse(args, { admin: { type: "string", default: "http://127.0.0.1:8080" } });
  const base = String(v.admin).replace(/\/$/, "");
  const ready = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5000) });
  io.stdout(await ready.text());
  const subs = (await (await fetch(`${base}/debug/subscribers?format=json`, { signal: AbortSignal.timeout(5000) })).json()) as {
    streams: Array<{ clusterName: string; dataType: string; queued: number; lastHeartbeat: string | null }>;
  };
  io.stdout(`${subs.streams.length} stream(s) from ${new Set(subs.streams.map((s) => s.clusterName)).size} cluster(s)\n`);
  for (const s of subs.streams) io.stdout(`  ${s.clusterName}\t${s.dataType}\tqueued=${s.queued}\tlast heartbeat=${s.lastHeartbeat ?? "-"}\n`);
  return ready.ok ? 0 : 1;
}

async function maestro(args: string[], io: CtlIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "apply" && sub !== "delete") throw new CtlUsageError(`ctl maestro needs apply or delete, got ${JSON.stringify(sub ?? "")}`);
  const v = parse(rest, {
    "database-url": { type: "string" },
    "data-dir": { type: "string" },
    id: { type: "string" },
    ...(sub === "apply" ? { file: { type: "string", short: "f" }, cluster: { type: "string" }, source: { type: "string" } } : {}),
  });
  const str = (key: string) => (typeof v[key] === "string" ? (v[key] as string) : undefined);
  let bundle: Record<string, unknown> | undefined;
  if (sub === "apply") {
    if (str("file") === undefined) throw new CtlUsageError("maestro apply needs -f FILE (or -f - for standard input)");
    if (str("cluster") === undefined) throw new CtlUsageError("maestro apply needs --cluster");
    bundle = await readBundleFile(str("file")!, readStdin);
  } else if (str("id") === undefined) {
    throw new CtlUsageError("maestro delete needs --id");
  }
  const sql = ctlSql(await ctlDatabase({ databaseUrl: str("database-url"), dataDir: str("data-dir") }, process.env));
  try {
    if (bundle !== undefined) {
      const r = await maestroApply(sql, { cluster: str("cluster")!, bundle, ...(str("id") && { id: str("id")! }), ...(str("source") && { source: str("source")! }) });
      if (r.consumerCreated) io.stderr(`created consumer ${str("cluster")}\n`);
      io.stdout(`${r.action} resource ${r.resourceId} (version ${r.version}, event ${r.eventId})\n`);
    } else {
      io.stdout(`marked resource ${str("id")} deleting (event ${await maestroDelete(sql, str("id")!)})\n`);
    }
    return 0;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
