import { Watch, type KubeConfig } from "@kubernetes/client-node";
import { silentLogger, type Logger } from "@ocm-conductor/router";

/** The least an informed object has: metadata with a name (client-node types timestamps as Date; JSON has strings). */
export interface NamedObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

/** What a {@link ResilientInformer} watches and whom it tells. */
export interface ResilientInformerOptions<T extends NamedObject> {
  /** Watch path, e.g. `/apis/work.open-cluster-management.io/v1/manifestworks`. */
  path: string;
  /** Lists the same collection (used for the initial list and every relist). */
  list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
  labelSelector?: string;
  onAdd?: (obj: T) => void;
  onUpdate?: (obj: T) => void;
  onDelete?: (obj: T) => void;
  /** Re-emits every cached object as an update this often, like client-go's resync; 0 disables. */
  resyncMs?: number;
  /** First retry delay after a failed list or watch; doubles (with jitter) up to {@link maxBackoffMs}. Default 500 ms. */
  initialBackoffMs?: number;
  /** Upper bound of the retry delay. Default 30 s. */
  maxBackoffMs?: number;
  /**
   * Server-side timeout of each watch request (`timeoutSeconds`), after which the API server sends
   * a bookmark and ends the watch, and the informer re-watches from that resourceVersion, as
   * client-go does. Default: random in [60, 120) s per watch, so informers do not re-watch in step
   * (client-go uses 5–10 min to spare API servers with thousands of clients; the conductor has a
   * handful of informers and prefers finding a dead watch sooner).
   */
  watchTimeoutSeconds?: number;
  /**
   * A watch that delivers nothing (no event, no bookmark) for this long is presumed dead (a
   * half-open TCP stream, or an API server that stopped serving it without closing it) and is
   * replaced by a new one from the last resourceVersion. A healthy watch is never silent for longer
   * than its server-side timeout (kube-apiserver sends a bookmark just before it), so the default
   * is that timeout + 30 s. 0 disables.
   */
  silentWatchMs?: number;
  logger?: Logger;
  name?: string;
}

/** Counters of a {@link ResilientInformer}, for metrics and tests. */
export interface ResilientInformerStats {
  /** Successful lists (the first one and every relist). */
  lists: number;
  /** Watch requests started. */
  watches: number;
  /** Failed lists and watches that ended with an error. */
  errors: number;
  /** Watches that answered 410 Gone (the informer relisted). */
  expired: number;
  /** Watches replaced because they were silent for `silentWatchMs`. */
  silentRestarts: number;
}

/** How one watch request ended. */
interface WatchOutcome {
  /** `closed`: ended normally (e.g. server timeout); `gone`: 410, relist; `silent`: replaced by the watchdog. */
  end: "closed" | "gone" | "silent" | "error" | "stopped";
  error?: unknown;
  /** Events and bookmarks received (ERROR events not counted). */
  lines: number;
  ms: number;
}

/** A watch that lasted this long, or delivered anything, counts as healthy and resets the backoff. */
const HEALTHY_WATCH_MS = 5_000;

/**
 * A list+watch cache that never stays down, built on client-node's `Watch` (ecosystem.md §5).
 *
 * client-node's own informer (1.4) relists on 410 but stops for good on any other error, resolves
 * `start()` even when the first list failed, and emits `connect` before every attempt (so a backoff
 * reset on `connect` never lets the backoff grow). This informer instead runs one loop:
 * list (first time, and after 410) → watch from the list's resourceVersion → on a normal end
 * re-watch from the last resourceVersion seen (events and bookmarks), on an error retry with
 * exponential backoff and jitter (reset only after a healthy watch). Watches carry a server-side
 * timeout and ask for bookmarks, and a watchdog replaces a watch that has gone silent.
 *
 * `start()` resolves only after the first complete list has been delivered to the callbacks; the
 * cache is re-emitted periodically as the hub's Go informers do (hub-services.md §1.3). A relist
 * reports objects missing from the new list as deletions and changed ones as updates, so no change
 * made while the watch was down is lost.
 */
export class ResilientInformer<T extends NamedObject> {
  private readonly watcher: Watch;
  private readonly options: ResilientInformerOptions<T>;
  private readonly logger: Logger;
  private readonly name: string;
  private readonly objects = new Map<string, Map<string, T>>();
  private readonly counters: ResilientInformerStats = { lists: 0, watches: 0, errors: 0, expired: 0, silentRestarts: 0 };
  private backoffMs: number;
  private stopped = false;
  private synced = false;
  private loop: Promise<void> | undefined;
  private firstList: Promise<void> | undefined;
  private resolveFirstList: (() => void) | undefined;
  private abortWatch: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(kubeConfig: KubeConfig, options: ResilientInformerOptions<T>) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    this.name = options.name ?? options.path;
    this.backoffMs = options.initialBackoffMs ?? 500;
    this.watcher = new Watch(kubeConfig);
  }

  /** True once the first complete list has been delivered. */
  get ready(): boolean {
    return this.synced;
  }

  /** A snapshot of the informer's counters. */
  get stats(): ResilientInformerStats {
    return { ...this.counters };
  }

  /**
   * Starts listing and watching; resolves after the first complete list has been delivered to the
   * callbacks (retrying with backoff until then), or when {@link stop} is called first.
   */
  async start(): Promise<void> {
    if (this.stopped) throw new Error(`informer ${this.name} was stopped; create a new one`);
    if (this.loop === undefined) {
      this.firstList = new Promise<void>((resolve) => (this.resolveFirstList = resolve));
      this.loop = this.run().catch((err: unknown) => {
        this.logger.error("informer loop failed", { informer: this.name, error: String(err) });
      });
    }
    await Promise.race([this.firstList, this.loop]);
    const resyncMs = this.options.resyncMs ?? 30 * 60_000;
    if (this.synced && !this.stopped && resyncMs > 0 && this.options.onUpdate !== undefined && this.resyncTimer === undefined) {
      this.resyncTimer = setInterval(() => this.list().forEach((obj) => this.emit("onUpdate", obj)), resyncMs);
      this.resyncTimer.unref();
    }
  }

  /** Every cached object, optionally of one namespace. */
  list(namespace?: string): T[] {
    if (namespace) return [...(this.objects.get(namespace)?.values() ?? [])];
    return [...this.objects.values()].flatMap((ns) => [...ns.values()]);
  }

  /** One cached object by name (and namespace for namespaced kinds). */
  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(namespace ?? "")?.get(name);
  }

  /** Stops watching (bounded: an in-flight list is not waited for longer than 5 s). Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resyncTimer);
    this.abortWatch?.();
    this.wake?.();
    this.resolveFirstList?.();
    if (this.loop !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.loop, new Promise((r) => (timer = setTimeout(r, 5_000)))]);
      clearTimeout(timer);
    }
  }

  private async run(): Promise<void> {
    const state = { needList: true, resourceVersion: "", justListed: false };
    while (!this.stopped) {
      try {
        await this.step(state);
      } catch (err) {
        // Only a bug or a malformed list gets here; keep the informer alive and retry.
        this.counters.errors++;
        this.logger.error("informer step failed", { informer: this.name, error: String(err) });
        state.needList = true;
        await this.pause("informer relisting after a failure");
      }
    }
  }

  /** One list (when needed) and one watch, then the wait its outcome calls for. */
  private async step(state: { needList: boolean; resourceVersion: string; justListed: boolean }): Promise<void> {
    if (state.needList) {
      let listed: Awaited<ReturnType<ResilientInformerOptions<T>["list"]>>;
      try {
        listed = await this.options.list();
      } catch (err) {
        this.counters.errors++;
        await this.pause("informer list failed; retrying", err);
        return;
      }
      if (this.stopped) return;
      this.counters.lists++;
      this.backoffMs = this.options.initialBackoffMs ?? 500; // the API server answers again
      this.replace(listed.items ?? []);
      state.resourceVersion = listed.metadata?.resourceVersion ?? "";
      state.needList = false;
      state.justListed = true;
      if (!this.synced) {
        this.synced = true;
        this.resolveFirstList?.();
      }
    }
    const outcome = await this.watchOnce(state.resourceVersion, (rv) => (state.resourceVersion = rv));
    const healthy = outcome.lines > 0 || outcome.ms >= HEALTHY_WATCH_MS;
    const afterList = state.justListed;
    state.justListed = false;
    if (healthy) this.backoffMs = this.options.initialBackoffMs ?? 500;
    switch (outcome.end) {
      case "stopped":
        return;
      case "silent":
        this.counters.silentRestarts++;
        this.logger.warn("informer watch was silent; re-watching", { informer: this.name, silentMs: outcome.ms, resourceVersion: state.resourceVersion });
        return;
      case "gone":
        this.counters.expired++;
        state.needList = true;
        this.logger.info("informer watch expired (410); relisting", { informer: this.name, resourceVersion: state.resourceVersion });
        // A 410 is an answer, not an outage (after an API server restart the first watch gets one):
        // relist at once, unless it came right after a fresh list, which would make a hot loop.
        if (afterList && !healthy) await this.pause("informer watch expired right after a list; relisting after a delay");
        return;
      case "closed":
        if (!healthy) await this.pause("informer watch ended at once; re-watching after a delay");
        return;
      case "error":
        this.counters.errors++;
        await this.pause("informer watch failed; restarting", outcome.error);
        return;
    }
  }

  /** One watch request from `resourceVersion`; `advance` is told every resourceVersion seen. */
  private watchOnce(resourceVersion: string, advance: (rv: string) => void): Promise<WatchOutcome> {
    return new Promise<WatchOutcome>((resolve) => {
      const started = Date.now();
      const timeoutSeconds = this.options.watchTimeoutSeconds ?? 60 + Math.floor(Math.random() * 60);
      const silentMs = this.options.silentWatchMs ?? timeoutSeconds * 1000 + 30_000;
      let lines = 0;
      let gone = false;
      let statusError: unknown;
      let finished = false;
      let controller: AbortController | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      const finish = (end: WatchOutcome["end"], error?: unknown): void => {
        if (finished) return;
        finished = true;
        clearTimeout(watchdog);
        this.abortWatch = undefined;
        controller?.abort(); // no-op once the watch has ended; ends a silent one
        resolve({ end, error, lines, ms: Date.now() - started });
      };
      const arm = (): void => {
        if (silentMs <= 0) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => finish("silent"), silentMs);
        watchdog.unref();
      };
      this.abortWatch = () => finish("stopped");
      arm();
      this.counters.watches++;
      const query: Record<string, string> = {
        resourceVersion,
        allowWatchBookmarks: "true",
        timeoutSeconds: String(timeoutSeconds),
      };
      if (this.options.labelSelector !== undefined) query.labelSelector = this.options.labelSelector;
      const onEvent = (type: string, obj: unknown): void => {
        if (finished) return; // a late line of a watch already given up on
        const o = obj as (T & { code?: number }) | undefined;
        if (type !== "ERROR" && typeof o?.metadata !== "object") return; // not an object event
        if (type === "ERROR") {
          if (o?.code === 410) gone = true;
          else statusError = new Error(`watch ERROR event: ${JSON.stringify(obj)}`);
          return;
        }
        lines++;
        arm();
        const rv = o?.metadata?.resourceVersion;
        if (type === "ADDED" || type === "MODIFIED") this.upsert(o as T);
        else if (type === "DELETED") this.remove(o as T);
        if (rv) advance(rv);
      };
      const onDone = (err: unknown): void => {
        if (this.stopped) return finish("stopped");
        const code = (err as { statusCode?: number; code?: number } | null)?.statusCode ?? (err as { code?: number } | null)?.code;
        if (gone || code === 410) return finish("gone");
        if (err) return finish("error", err);
        if (statusError !== undefined) return finish("error", statusError);
        finish("closed");
      };
      this.watcher.watch(this.options.path, query, onEvent, onDone).then(
        (c) => {
          controller = c;
          if (finished) c.abort(); // given up on (silent or stopped) before the response came
        },
        (err: unknown) => finish("error", err),
      );
    });
  }

  /** Applies a complete list: missing objects are deleted, new ones added, changed ones updated. */
  private replace(items: T[]): void {
    const fresh = new Set(items.map((o) => key(o)));
    for (const old of this.list()) if (!fresh.has(key(old))) this.remove(old);
    for (const obj of items) this.upsert(obj);
  }

  private upsert(obj: T): void {
    const ns = obj.metadata.namespace ?? "";
    let byName = this.objects.get(ns);
    if (byName === undefined) this.objects.set(ns, (byName = new Map()));
    const old = byName.get(obj.metadata.name);
    if (old !== undefined && old.metadata.resourceVersion !== undefined && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    byName.set(obj.metadata.name, obj);
    this.emit(old === undefined ? "onAdd" : "onUpdate", obj);
  }

  private remove(obj: T): void {
    const ns = obj.metadata.namespace ?? "";
    const byName = this.objects.get(ns);
    const old = byName?.get(obj.metadata.name);
    if (byName === undefined || old === undefined) return;
    byName.delete(obj.metadata.name);
    if (byName.size === 0) this.objects.delete(ns);
    this.emit("onDelete", obj);
  }

  /** Calls a handler; a throwing handler is logged and does not break the watch. */
  private emit(handler: "onAdd" | "onUpdate" | "onDelete", obj: T): void {
    try {
      this.options[handler]?.(obj);
    } catch (err) {
      this.logger.error("informer handler failed", { informer: this.name, handler, object: key(obj), error: String(err) });
    }
  }

  /** Waits the next backoff delay (woken early by stop()). */
  private async pause(message: string, err?: unknown): Promise<void> {
    if (this.stopped) return;
    const delayMs = this.backoffMs * (0.5 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 30_000);
    this.logger.warn(message, { informer: this.name, ...(err === undefined ? {} : { error: String(err) }), delayMs: Math.round(delayMs) });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delayMs); // not unref'd: a running informer keeps the process up until stop()
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }
}

function key(obj: NamedObject): string {
  return `${obj.metadata.namespace ?? ""}/${obj.metadata.name}`;
}
