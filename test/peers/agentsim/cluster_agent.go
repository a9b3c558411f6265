package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workinformers "open-cluster-management.io/api/client/work/informers/externalversions"
	worklisters "open-cluster-management.io/api/client/work/listers/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	clientoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work"
	agentcodec "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/agent/codec"
	workstore "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/store"
	grpcoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc"
)

// stopWait bounds how long stopping one agent waits for its goroutines; stopping a cluster (snapshot, work
// agent, registration agent) therefore takes at most about 10 s.
const stopWait = 4 * time.Second

// behaviour holds the knobs that decide what a simulated work agent does with the works it receives.
type behaviour struct {
	autoStatus     bool          // publish Applied/Available for every new generation
	autoDelete     bool          // remove finalizers as soon as a work is deleting
	informerResync time.Duration // 0 disables periodic informer resync
	opTimeout      time.Duration // bound for one patch (one publish to the server)
	maxRetries     int           // per work key, before giving up with an error event
}

// clusterAgent is one simulated managed cluster's work agent: its own gRPC dialer (own HTTP/2 connection), its own
// sdk-go agent client and watcher store, a ManifestWork informer on the client, and one worker that reconciles.
type clusterAgent struct {
	name      string
	out       *emitter
	beh       behaviour
	cancel    context.CancelFunc
	grpcOpts  *grpcoptions.GRPCOptions
	store     *workstore.AgentInformerWatcherStore
	works     workv1client.ManifestWorkInterface
	lister    worklisters.ManifestWorkNamespaceLister
	queue     workqueue.TypedRateLimitingInterface[string]
	factory   workinformers.SharedInformerFactory
	workers   sync.WaitGroup
	seededUID map[kubetypes.UID]bool
	stopOnce  sync.Once
}

// gatedStore is sdk-go's agent store with HasInitiated held false until the works carried over from a previous
// run (start-cluster with keepStore) are back in the store. sdk-go sends its first spec resync only once the store
// reports initiated, so that resync lists the carried-over works, as a restarted klusterlet's would.
type gatedStore struct {
	*workstore.AgentInformerWatcherStore
	ready func() bool
}

func (g *gatedStore) HasInitiated() bool {
	return g.AgentInformerWatcherStore.HasInitiated() && g.ready()
}

// startClusterAgent connects one simulated cluster. seed holds works to put back into the fresh store.
func startClusterAgent(parent context.Context, name, configPath string, seed []workv1.ManifestWork,
	out *emitter, beh behaviour) (*clusterAgent, error) {
	grpcOpts, err := grpcoptions.BuildGRPCOptionsFromFlags(configPath)
	if err != nil {
		return nil, fmt.Errorf("build gRPC options from %s: %w", configPath, err)
	}

	ctx, cancel := context.WithCancel(parent)
	a := &clusterAgent{
		name: name, out: out, beh: beh, cancel: cancel, grpcOpts: grpcOpts,
		seededUID: map[kubetypes.UID]bool{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 2*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "agentsim-" + name}),
	}

	a.store = workstore.NewAgentInformerWatcherStore()
	var seeded atomic.Bool
	seeded.Store(len(seed) == 0)
	store := &gatedStore{AgentInformerWatcherStore: a.store, ready: func() bool {
		if !seeded.Load() {
			return false
		}
		for i := range seed {
			if !storeHas(a.store, name, seed[i].Name) {
				return false
			}
		}
		return true
	}}
	for i := range seed {
		a.seededUID[seed[i].UID] = true
	}

	opt := clientoptions.NewGenericClientOptions(grpcOpts, agentcodec.NewManifestBundleCodec(), name+"-work-agent").
		WithClusterName(name).
		WithClientWatcherStore(store)
	holder, err := work.NewAgentClientHolder(ctx, opt)
	if err != nil {
		cancel()
		_ = grpcOpts.Dialer.Close()
		return nil, fmt.Errorf("create work agent client: %w", err)
	}
	a.works = holder.ManifestWorks(name)

	a.factory = workinformers.NewSharedInformerFactoryWithOptions(holder.WorkInterface(), beh.informerResync,
		workinformers.WithNamespace(name))
	informer := a.factory.Work().V1().ManifestWorks()
	attachInformer(a.store, informer.Informer())
	a.lister = informer.Lister().ManifestWorks(name)
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    a.onAdd,
		UpdateFunc: a.onUpdate,
		DeleteFunc: a.onDelete,
	}); err != nil {
		a.stop()
		return nil, fmt.Errorf("add informer handler: %w", err)
	}
	a.factory.Start(ctx.Done())

	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.Informer().HasSynced) {
		a.stop()
		return nil, fmt.Errorf("work informer did not sync within 30s")
	}

	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		for a.processNext(ctx) {
		}
	}()

	if len(seed) > 0 {
		a.workers.Add(1)
		go func() {
			defer a.workers.Done()
			for i := range seed {
				if ctx.Err() != nil {
					return
				}
				// Add blocks until the informer's watch takes the event.
				if err := a.store.Add(seed[i].DeepCopy()); err != nil {
					out.error(name, "seed store", err)
				}
			}
			seeded.Store(true)
		}()
	}
	return a, nil
}

// stop cancels the cluster's context, closes its gRPC connection and waits (bounded) for its goroutines.
func (a *clusterAgent) stop() {
	a.stopOnce.Do(func() {
		a.cancel()
		a.queue.ShutDown()
		closeDialer(a.out, a.name, a.grpcOpts)
		done := make(chan struct{})
		go func() {
			a.workers.Wait()
			if a.factory != nil {
				a.factory.Shutdown()
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(stopWait):
			a.out.error(a.name, "stop",
				errors.New("cluster goroutines did not stop within "+stopWait.String()+" (stacks on stderr)"))
			dumpGoroutines()
		}
	})
}

// closeDialer closes the cluster's gRPC connection. sdk-go may have closed it already (it does so on every
// disconnect), which grpc-go reports as Canceled; that is not an error here.
func closeDialer(out *emitter, cluster string, opts *grpcoptions.GRPCOptions) {
	if err := opts.Dialer.Close(); err != nil && status.Code(err) != codes.Canceled {
		out.error(cluster, "close grpc connection", err)
	}
}

// dumpGoroutines writes every goroutine's stack to stderr, to diagnose a stop that hangs.
func dumpGoroutines() {
	_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
}

// snapshot lists the works in the agent's store (the sdk-go client cache).
func (a *clusterAgent) snapshot(ctx context.Context) ([]workv1.ManifestWork, error) {
	list, err := a.works.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// findByUID returns the cached work with the given UID.
func (a *clusterAgent) findByUID(ctx context.Context, uid string) (*workv1.ManifestWork, error) {
	items, err := a.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	for i := range items {
		if string(items[i].UID) == uid {
			return &items[i], nil
		}
	}
	return nil, fmt.Errorf("no work with uid %q in the cache of cluster %s", uid, a.name)
}

func workFields(cluster string, w *workv1.ManifestWork) fields {
	return fields{
		"cluster":         cluster,
		"name":            w.Name,
		"uid":             string(w.UID),
		"generation":      w.Generation,
		"resourceVersion": w.ResourceVersion,
		"deleting":        !w.DeletionTimestamp.IsZero(),
		"manifests":       len(w.Spec.Workload.Manifests),
		"finalizers":      w.Finalizers,
		"labels":          w.Labels,
		"annotations":     w.Annotations,
	}
}

func (a *clusterAgent) onAdd(obj any) {
	w, ok := obj.(*workv1.ManifestWork)
	if !ok {
		return
	}
	f := workFields(a.name, w)
	if a.seededUID[w.UID] {
		f["seeded"] = true
	}
	a.out.emit("work-added", f)
	a.queue.Add(w.Name)
}

func (a *clusterAgent) onUpdate(oldObj, newObj any) {
	w, ok := newObj.(*workv1.ManifestWork)
	if !ok {
		return
	}
	// Compare whole objects, not resourceVersions: sdk-go v1.1 keeps the spec version as resourceVersion, so local
	// patches (finalizer, status) do not change it.
	if old, ok := oldObj.(*workv1.ManifestWork); ok && apiequality.Semantic.DeepEqual(old, w) {
		a.queue.Add(w.Name) // periodic informer resync: no change to report
		return
	}
	a.out.emit("work-updated", workFields(a.name, w))
	a.queue.Add(w.Name)
}

func (a *clusterAgent) onDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	w, ok := obj.(*workv1.ManifestWork)
	if !ok {
		return
	}
	a.out.emit("work-deleted", fields{
		"cluster": a.name, "name": w.Name, "uid": string(w.UID), "generation": w.Generation,
	})
}

// processNext handles one queued work name; it returns false once the queue is shut down.
func (a *clusterAgent) processNext(ctx context.Context) bool {
	key, quit := a.queue.Get()
	if quit {
		return false
	}
	defer a.queue.Done(key)
	err := a.reconcile(ctx, key)
	switch {
	case err == nil:
		a.queue.Forget(key)
	case ctx.Err() != nil:
		// stopping
	case a.queue.NumRequeues(key) < a.beh.maxRetries:
		if !apierrors.IsConflict(err) {
			a.out.emit("retry", fields{"cluster": a.name, "name": key, "message": err.Error()})
		}
		a.queue.AddRateLimited(key)
	default:
		a.out.error(a.name, "reconcile work "+key+" (giving up)", err)
		a.queue.Forget(key)
	}
	return true
}

// reconcile is the simulated work agent: finalizer first, then status; on deletion, drop the finalizers.
func (a *clusterAgent) reconcile(parent context.Context, name string) error {
	w, err := a.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(parent, a.beh.opTimeout)
	defer cancel()

	if !w.DeletionTimestamp.IsZero() {
		if !a.beh.autoDelete || len(w.Finalizers) == 0 {
			return nil
		}
		if _, err := a.works.Patch(ctx, w.Name, kubetypes.MergePatchType, removeFinalizersPatch(w),
			metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("remove finalizers: %w", err)
		}
		a.out.emit("finalizers-removed", fields{
			"cluster": a.name, "name": w.Name, "uid": string(w.UID), "generation": w.Generation,
		})
		return nil
	}

	if !hasFinalizer(w) {
		patch, err := addFinalizerPatch(w)
		if err != nil {
			return err
		}
		if _, err := a.works.Patch(ctx, w.Name, kubetypes.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("add finalizer: %w", err)
		}
		a.out.emit("finalizer-added", fields{"cluster": a.name, "name": w.Name, "uid": string(w.UID)})
		return nil // the resulting update event queues the status step
	}

	if !a.beh.autoStatus || statusIsCurrent(w) {
		return nil
	}
	return a.publishStatus(ctx, w, appliedStatus(w), "auto")
}

// publishStatus patches the "status" subresource, which makes sdk-go publish a status update_request.
func (a *clusterAgent) publishStatus(ctx context.Context, w *workv1.ManifestWork, status workv1.ManifestWorkStatus,
	origin string) error {
	patch, err := statusPatchFor(w, status)
	if err != nil {
		return err
	}
	updated, err := a.works.Patch(ctx, w.Name, kubetypes.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch status: %w", err)
	}
	a.out.emit("status-published", fields{
		"cluster": a.name, "name": updated.Name, "uid": string(updated.UID), "generation": updated.Generation,
		"conditions": conditionSummary(updated.Status.Conditions),
		"manifests":  len(updated.Status.ResourceStatus.Manifests), "origin": origin,
	})
	return nil
}
