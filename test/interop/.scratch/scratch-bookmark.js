import { Watch } from "@kubernetes/client-node";
import { startControlPlane } from "@ocm-conductor/test-harness";
const cp = await startControlPlane();
const t0 = Date.now();
const log = (...a) => console.log(((Date.now() - t0) / 1000).toFixed(1), ...a);
const w = new Watch(cp.kubeConfig);
for (let i = 0; i < 30; i++) {
    let ok = true;
    const ended = new Promise((resolve) => {
        void w.watch("/apis/work.open-cluster-management.io/v1/manifestworks", { allowWatchBookmarks: "true", timeoutSeconds: "90", resourceVersion: "" }, (type, obj) => log(type, obj?.metadata?.resourceVersion, obj?.code, obj?.message), (err) => { log("done", String(err)); ok = !err; resolve(); });
    });
    await ended;
    if (ok)
        break;
    await new Promise((r) => setTimeout(r, 1000));
}
await cp.stop();
