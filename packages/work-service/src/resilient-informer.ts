import { makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from "@kubernetes/client-node";

/** The least an informed object has: metadata with a name (client-node types timestamps as Date; JSON has strings). */
export interface NamedObject {
  metadata: { name: string; namespace?: string };
}
import { silentLogger, type Logger } from "@ocm-conductor/router";

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
  /** First restart delay after an error; doubles up to {@link maxBackoffMs}. Default 500 ms. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  logger?: Logger;
  name?: string;
}

/**
 * A client-node informer that never stays down. client-node 1.4 relists on 410 by itself but stops
 * for good on any other watch error (ecosystem.md §5); this wrapper restarts it with exponential
 * backoff and jitter, reports ready only after the first complete list, and re-emits the cache
 * periodically as the hub's Go informers do (hub-services.md §1.3).
 */
export class ResilientInformer<T extends NamedObject> {
  private readonly informer;
  private readonly options: ResilientInformerOptions<T>;
  private readonly logger: Logger;
  private backoffMs: number;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private synced = false;

  constructor(kubeConfig: KubeConfig, options: ResilientInformerOptions<T>) {
    this.options = options;
    this.logger = options.logger ?? silentLogger;
    this.backoffMs = options.initialBackoffMs ?? 500;
    // client-node's types want KubernetesObject; the objects are the JSON the API server sent.
    const list = options.list as unknown as () => Promise<KubernetesListObject<KubernetesObject>>;
    this.informer = makeInformer<KubernetesObject>(kubeConfig, options.path, list, options.labelSelector);
    const as = (cb: ((obj: T) => void) | undefined) => (obj: KubernetesObject) => cb?.(obj as unknown as T);
    if (options.onAdd) this.informer.on("add", as(options.onAdd));
    if (options.onUpdate) this.informer.on("update", as(options.onUpdate));
    if (options.onDelete) this.informer.on("delete", as(options.onDelete));
    this.informer.on("error", (err?: unknown) => this.restartLater(err));
    this.informer.on("connect", () => {
      this.backoffMs = options.initialBackoffMs ?? 500;
    });
  }

  /** True once the first complete list has been delivered. */
  get ready(): boolean {
    return this.synced;
  }

  /** Starts watching; resolves after the first complete list (retrying with backoff until then). */
  async start(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      try {
        await this.informer.start();
        this.synced = true;
        break;
      } catch (err) {
        this.logger.warn("informer list failed; retrying", { informer: this.options.name ?? this.options.path, error: String(err) });
        await new Promise((r) => setTimeout(r, this.nextBackoff()));
      }
    }
    const resyncMs = this.options.resyncMs ?? 30 * 60_000;
    if (resyncMs > 0 && this.options.onUpdate !== undefined) {
      this.resyncTimer = setInterval(() => this.list().forEach((obj) => this.options.onUpdate?.(obj)), resyncMs);
      this.resyncTimer.unref();
    }
  }

  /** Every cached object, optionally of one namespace. */
  list(namespace?: string): T[] {
    return this.informer.list(namespace) as unknown as T[];
  }

  /** One cached object by name (and namespace for namespaced kinds). */
  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace) as unknown as T | undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    clearInterval(this.resyncTimer);
    await this.informer.stop();
  }

  private restartLater(err: unknown): void {
    if (this.stopped) return;
    const delay = this.nextBackoff();
    this.logger.warn("informer stopped on error; restarting", { informer: this.options.name ?? this.options.path, error: String(err), delayMs: delay });
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.informer.start().catch((e: unknown) => this.restartLater(e));
    }, delay);
    this.restartTimer.unref();
  }

  private nextBackoff(): number {
    const delay = this.backoffMs * (0.5 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 30_000);
    return delay;
  }
}
