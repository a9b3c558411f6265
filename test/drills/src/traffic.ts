/**
 * Mid-traffic writer: Maestro creates and soft deletes on PostgreSQL and ManifestWork creates and
 * deletes on the hub, round-robin over the clusters, each write retried until its store answers
 * (so writes issued while PostgreSQL or kube-apiserver is down land when it is back).
 */
import type { World } from "./world.js";
import { createWorkRetrying, sleep } from "./world.js";

export interface TrafficOptions {
  clusters: string[];
  /** Name prefix of the ManifestWorks (unique per drill). */
  prefix: string;
  kube?: boolean;
  maestro?: boolean;
  /** Pause between rounds (one write per source per cluster per round). */
  pauseMs?: number;
}

let instances = 0;

export class Traffic {
  /** Names are `<prefix>-<instance>-<round>`: never reused, so no work is recreated under a deleted one's name. */
  private readonly instance = instances++;
  readonly created = { kube: 0, maestro: 0 };
  readonly deleted = { kube: 0, maestro: 0 };
  private stopping = false;
  private round = 0;
  private readonly maestroIds = new Map<string, string[]>();
  private readonly works = new Map<string, string[]>();
  readonly done: Promise<void>;

  constructor(private readonly w: World, private readonly o: TrafficOptions) {
    this.done = this.loop();
  }

  /** One round synchronously (used for the writes before and after a fault). */
  static async burst(w: World, o: TrafficOptions, rounds: number): Promise<Traffic> {
    const t = new Traffic(w, { ...o, pauseMs: 0 });
    while (t.round < rounds) await sleep(20);
    await t.stop();
    return t;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.done;
  }

  private async loop(): Promise<void> {
    const { clusters, prefix } = this.o;
    while (!this.stopping) {
      const r = this.round;
      await Promise.all(clusters.map(async (cluster) => {
        const ops: Array<Promise<unknown>> = [];
        if (this.o.maestro !== false) {
          ops.push(this.w.maestro.create(cluster).then((id) => {
            this.created.maestro++;
            const ids = this.maestroIds.get(cluster) ?? [];
            ids.push(id);
            this.maestroIds.set(cluster, ids);
          }));
          // Every 5th round soft-deletes the oldest resource this writer made for the cluster.
          const oldest = this.maestroIds.get(cluster);
          if (r % 5 === 4 && oldest && oldest.length > 1) {
            const id = oldest.shift()!;
            ops.push(this.w.maestro.markDeleting(id).then(() => this.deleted.maestro++));
          }
        }
        if (this.o.kube !== false) {
          const name = `${prefix}-${this.instance}-${r}`;
          ops.push(createWorkRetrying(this.w, cluster, name).then(() => {
            this.created.kube++;
            const names = this.works.get(cluster) ?? [];
            names.push(name);
            this.works.set(cluster, names);
          }));
          const oldest = this.works.get(cluster);
          if (r % 5 === 4 && oldest && oldest.length > 1) {
            const name = oldest.shift()!;
            ops.push(this.deleteWork(cluster, name).then(() => this.deleted.kube++));
          }
        }
        await Promise.all(ops);
      }));
      this.round++;
      if (this.o.pauseMs) await sleep(this.o.pauseMs);
    }
  }

  private async deleteWork(cluster: string, name: string): Promise<void> {
    const deadline = Date.now() + 90_000;
    for (;;) {
      try {
        await this.w.hub.deleteWork(cluster, name);
        return;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return;
        if (Date.now() > deadline) throw err;
        await sleep(200);
      }
    }
  }
}
