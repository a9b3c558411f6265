import { Extension, stringExtension, type CloudEvent } from "@ocm-conductor/protocol";
import type { Backend, IncompleteList, ListOptions, RequestContext, SpecEventSink } from "./backend.js";
import { BackendError } from "./backend-error.js";

/** The `source` of ManifestWorks on the hub's Kubernetes API (hub-services.md §3). */
export const KUBE_SOURCE = "kube";
/** The `source` of Maestro resources (maestro's `DefaultSourceID`). */
export const MAESTRO_SOURCE = "maestro";

/** The sources a {@link SourceRouter} routes between. */
export type WorkSource = typeof KUBE_SOURCE | typeof MAESTRO_SOURCE;

/**
 * Which source an `originalsource` value names: the bare source or the source followed by `::`
 * (hub-services.md §3, router.go's prefix predicates). Anything else, the empty string included,
 * is `undefined`. The Go predicates slice the string and panic on short values; these never do.
 */
export function workSourceOf(value: string): WorkSource | undefined {
  for (const source of [KUBE_SOURCE, MAESTRO_SOURCE] as const) {
    if (value === source || value.startsWith(`${source}::`)) return source;
  }
  return undefined;
}

/** Options of {@link SourceRouter}: a backend per source; a missing one means that route is off. */
export interface SourceRouterOptions {
  kube?: Backend;
  maestro?: Backend;
}

/**
 * The manifestbundles backend of a conductor that serves both work sources (hub-services.md §3):
 * spec events of both reach the agents, a resync lists the cluster's kube works followed by its
 * Maestro resources, and a status update goes to the source named by its `originalsource`
 * extension, which the agent copies from the spec event's `source`.
 *
 * Better than the Go router: when one source cannot be listed the resync still carries the
 * other's objects, as an {@link IncompleteList} (so the broker synthesises no deletion for objects
 * it cannot see) instead of failing the agent's whole resync; a route that is off or an unknown
 * source is a typed `BadRequest`, never a panic.
 */
export class SourceRouter implements Backend {
  private readonly routes: Array<[WorkSource, Backend]>;

  constructor(options: SourceRouterOptions) {
    this.routes = [];
    if (options.kube !== undefined) this.routes.push([KUBE_SOURCE, options.kube]);
    if (options.maestro !== undefined) this.routes.push([MAESTRO_SOURCE, options.maestro]);
  }

  /** The sources this router serves. */
  get sources(): WorkSource[] {
    return this.routes.map(([source]) => source);
  }

  async list(options: ListOptions, signal: AbortSignal): Promise<CloudEvent[] | IncompleteList> {
    const results = await Promise.allSettled(this.routes.map(([, backend]) => backend.list(options, signal)));
    const events: CloudEvent[] = [];
    const failed: string[] = [];
    let firstError: unknown;
    results.forEach((result, i) => {
      const source = this.routes[i]![0];
      if (result.status === "rejected") {
        firstError ??= result.reason;
        failed.push(`failed to list ${source} resources: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`);
        return;
      }
      if (Array.isArray(result.value)) events.push(...result.value);
      else {
        events.push(...result.value.events);
        failed.push(`${source}: ${result.value.incomplete}`);
      }
    });
    if (failed.length === 0) return events;
    if (results.every((r) => r.status === "rejected")) throw firstError;
    return { events, incomplete: failed.join("; ") };
  }

  async handle(event: CloudEvent, context: RequestContext): Promise<void> {
    const original = BackendError.badRequestOn("failed to get original source from event", () => stringExtension(event, Extension.originalSource));
    const source = workSourceOf(original);
    if (source === undefined) throw BackendError.of("BadRequest", `unknown resource original source: ${original}`);
    const backend = this.routes.find(([s]) => s === source)?.[1];
    if (backend === undefined) throw BackendError.of("ServiceUnavailable", `the ${source} work route is not served by this conductor`);
    await backend.handle(event, context);
  }

  attach(sink: SpecEventSink): void {
    for (const [, backend] of this.routes) backend.attach?.(sink);
  }
}
