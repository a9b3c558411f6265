package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	clusterinformers "open-cluster-management.io/api/client/cluster/informers/externalversions"
	clusterv1 "open-cluster-management.io/api/cluster/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/cluster"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/csr"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/event"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/lease"
	clientoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/store"
	grpcoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc"
)

// leaseName is the lease the hub creates in the cluster namespace and the registration agent renews.
const leaseName = "managed-cluster-lease"

// registrationBehaviour holds the registration-side knobs.
type registrationBehaviour struct {
	leaseInterval time.Duration // how often the lease is renewed
	waitForHub    time.Duration // bound on waiting for the hub to send the ManagedCluster or the lease
	opTimeout     time.Duration
	join          joinBehaviour
}

// registrationAgent is one simulated cluster's registration agent. Like the klusterlet's gRPC registration driver,
// it builds every client (managedclusters, CSR, lease, event, addon) from ONE gRPC options object, i.e. one
// GRPCDialer, separate from the cluster's work agent. (The dialer reuses its connection only while it is
// Connecting or Ready, so clients built back to back may still open one connection each; see README.)
type registrationAgent struct {
	name     string
	out      *emitter
	beh      registrationBehaviour
	cancel   context.CancelFunc
	grpcOpts *grpcoptions.GRPCOptions
	wg       sync.WaitGroup
	stopOnce sync.Once

	csrChanged chan struct{}           // the CSR informer saw a change (capacity 1, never blocks)
	conds      clusterConditionTracker // which hub-set ManagedCluster conditions were True
}

func startRegistrationAgent(parent context.Context, name, configPath string, out *emitter,
	beh registrationBehaviour) (*registrationAgent, error) {
	grpcOpts, err := grpcoptions.BuildGRPCOptionsFromFlags(configPath)
	if err != nil {
		return nil, fmt.Errorf("build gRPC options from %s: %w", configPath, err)
	}
	ctx, cancel := context.WithCancel(parent)
	r := &registrationAgent{name: name, out: out, beh: beh, cancel: cancel, grpcOpts: grpcOpts,
		csrChanged: make(chan struct{}, 1)}
	fail := func(what string, err error) (*registrationAgent, error) {
		r.stop()
		return nil, fmt.Errorf("%s: %w", what, err)
	}

	// ManagedCluster client, with an informer on the store (the klusterlet watches its own ManagedCluster).
	clusterStore := store.NewAgentInformerWatcherStore[*clusterv1.ManagedCluster]()
	clusterHolder, err := cluster.NewClientHolder(ctx,
		clientoptions.NewGenericClientOptions(grpcOpts, cluster.NewManagedClusterCodec(), name).
			WithClusterName(name).WithClientWatcherStore(clusterStore))
	if err != nil {
		return fail("create managedcluster client", err)
	}
	clusterFactory := clusterinformers.NewSharedInformerFactory(clusterHolder.ClusterInterface(), 0)
	clusterInformer := clusterFactory.Cluster().V1().ManagedClusters().Informer()
	attachClusterInformer(clusterStore, clusterInformer)
	if _, err := clusterInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { r.onCluster("managedcluster-added", obj) },
		UpdateFunc: func(_, obj any) {
			r.onCluster("managedcluster-updated", obj)
		},
	}); err != nil {
		return fail("managedcluster informer", err)
	}

	// CSR client; its holder builds the informer.
	csrHolder, err := csr.NewAgentClientHolder(ctx,
		clientoptions.NewGenericClientOptions(grpcOpts, csr.NewCSRCodec(), name).
			WithClusterName(name).
			WithClientWatcherStore(store.NewAgentInformerWatcherStore[*certificatesv1.CertificateSigningRequest]()))
	if err != nil {
		return fail("create csr client", err)
	}
	// The join flow watches its CSR through this informer, as the klusterlet's gRPC driver does.
	if _, err := csrHolder.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.onCSR("csr-added", obj) },
		UpdateFunc: func(_, obj any) { r.onCSR("csr-updated", obj) },
	}); err != nil {
		return fail("csr informer", err)
	}

	// Lease client on a simple store, filled by the hub's spec events and resync.
	leaseClient, err := lease.NewLeaseClient(ctx,
		clientoptions.NewGenericClientOptions(grpcOpts, lease.NewLeaseCodec(), name).
			WithClusterName(name).WithClientWatcherStore(store.NewSimpleStore[*coordinationv1.Lease]()),
		name)
	if err != nil {
		return fail("create lease client", err)
	}

	// Event client: publish only, no subscription and no resync (as the klusterlet configures it).
	eventHolder, err := event.NewClientHolder(ctx,
		clientoptions.NewGenericClientOptions(grpcOpts, event.NewEventCodec(), name).
			WithClusterName(name).WithSubscription(false).WithResyncEnabled(false))
	if err != nil {
		return fail("create event client", err)
	}

	// Addon client (data type per sdk-go generation, see addon_v1_*.go); it starts its own informer.
	if err := r.startAddonClient(ctx); err != nil {
		return fail("create addon client", err)
	}

	clusterFactory.Start(ctx.Done())
	go csrHolder.Informer().Run(ctx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), clusterInformer.HasSynced, csrHolder.Informer().HasSynced) {
		return fail("informers", errors.New("managedcluster/csr informers did not sync within 30s"))
	}

	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.register(ctx, clusterHolder, csrHolder, eventHolder)
		r.renewLease(ctx, leaseClient)
	}()
	return r, nil
}

func (r *registrationAgent) onCluster(eventName string, obj any) {
	mc, ok := obj.(*clusterv1.ManagedCluster)
	if !ok {
		return
	}
	r.out.emit(eventName, fields{
		"cluster": r.name, "name": mc.Name, "resourceVersion": mc.ResourceVersion,
		"hubAcceptsClient": mc.Spec.HubAcceptsClient, "conditions": conditionSummary(mc.Status.Conditions),
	})
	r.conds.observe(r, mc)
}

func (r *registrationAgent) stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		closeDialer(r.out, r.name, r.grpcOpts)
		done := make(chan struct{})
		go func() { r.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopWait):
			r.out.error(r.name, "stop registration", errors.New("registration goroutine did not stop within "+stopWait.String()+" "+
				"(stacks on stderr)"))
			dumpGoroutines()
		}
	})
}

// register creates the ManagedCluster, a CSR (whose certificate it then awaits in the background) and an event, then
// waits for the hub to send the ManagedCluster back and, unless --cluster-status-patch=false, reports its status.
func (r *registrationAgent) register(ctx context.Context, clusterHolder *cluster.ClientHolder,
	csrHolder *csr.ClientHolder, eventHolder *event.EventV1ClientWrapper) {
	opCtx, cancel := context.WithTimeout(ctx, r.beh.opTimeout)
	defer cancel()

	mc := &clusterv1.ManagedCluster{
		ObjectMeta: metav1.ObjectMeta{Name: r.name, Labels: map[string]string{"agentsim": "true"}},
		Spec:       clusterv1.ManagedClusterSpec{HubAcceptsClient: true, LeaseDurationSeconds: 60},
	}
	switch _, err := clusterHolder.ManagedClusters().Create(opCtx, mc, metav1.CreateOptions{}); {
	case err == nil:
		r.out.emit("managedcluster-create-published", fields{"cluster": r.name})
	case apierrors.IsAlreadyExists(err):
		r.out.emit("managedcluster-exists", fields{"cluster": r.name})
	default:
		r.out.error(r.name, "create managedcluster", err)
	}

	r.createCSR(opCtx, ctx, csrHolder)

	now := time.Now()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", r.name, now.UnixNano()),
			Namespace: r.name,
			UID:       kubetypes.UID(fmt.Sprintf("agentsim-%s-%d", r.name, now.UnixNano())),
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: "agentsim",
		ReportingInstance:   r.name + "-agentsim",
		Action:              "Register",
		Reason:              "AgentSimStarted",
		// The API server requires regarding.namespace to match the event's namespace (the cluster's).
		Regarding: corev1.ObjectReference{Kind: "ManagedCluster", Name: r.name, Namespace: r.name},
		Note:      "agentsim registration agent started",
		Type:      corev1.EventTypeNormal,
	}
	if _, err := eventHolder.Events(r.name).Create(opCtx, ev, metav1.CreateOptions{}); err != nil {
		r.out.error(r.name, "create event", err)
	} else {
		r.out.emit("event-create-published", fields{"cluster": r.name, "name": ev.Name})
	}

	// The status patch needs the ManagedCluster in the agent's store, which only the hub fills.
	got, err := waitFor(ctx, r.beh.waitForHub, func() (*clusterv1.ManagedCluster, bool) {
		c, err := clusterHolder.ManagedClusters().Get(ctx, r.name, metav1.GetOptions{})
		return c, err == nil
	})
	if err != nil {
		r.out.error(r.name, "wait for managedcluster from the hub", err)
		return
	}
	if !r.beh.join.statusPatch {
		return
	}
	status := clusterv1.ManagedClusterStatus{
		Conditions: []metav1.Condition{{
			Type: clusterv1.ManagedClusterConditionAvailable, Status: metav1.ConditionTrue,
			Reason: "ManagedClusterAvailable", Message: "agentsim reports the cluster available",
			LastTransitionTime: metav1.Now(),
		}},
		Version:     clusterv1.ManagedClusterVersion{Kubernetes: "v1.35.0-agentsim"},
		Capacity:    clusterv1.ResourceList{clusterv1.ResourceCPU: resource.MustParse("4")},
		Allocatable: clusterv1.ResourceList{clusterv1.ResourceCPU: resource.MustParse("3")},
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		r.out.error(r.name, "managedcluster status patch", err)
		return
	}
	patchCtx, patchCancel := context.WithTimeout(ctx, r.beh.opTimeout)
	defer patchCancel()
	if _, err := clusterHolder.ManagedClusters().Patch(patchCtx, got.Name, kubetypes.MergePatchType, patch,
		metav1.PatchOptions{}, "status"); err != nil {
		r.out.error(r.name, "patch managedcluster status", err)
		return
	}
	r.out.emit("managedcluster-status-published", fields{
		"cluster": r.name, "conditions": conditionSummary(status.Conditions),
	})
}

// renewLease renews the hub-created lease every leaseInterval until the context ends.
func (r *registrationAgent) renewLease(ctx context.Context, leaseClient *lease.LeaseClient) {
	ticker := time.NewTicker(r.beh.leaseInterval)
	defer ticker.Stop()
	waitingSince := time.Now()
	reportedMissing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		current, err := leaseClient.Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			if !reportedMissing && time.Since(waitingSince) > r.beh.waitForHub {
				r.out.error(r.name, "lease", fmt.Errorf("no lease %s/%s from the hub after %s", r.name, leaseName,
					r.beh.waitForHub))
				reportedMissing = true
			}
			continue
		}
		renewed := current.DeepCopy()
		renewed.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		opCtx, cancel := context.WithTimeout(ctx, r.beh.opTimeout)
		_, err = leaseClient.Update(opCtx, renewed, metav1.UpdateOptions{})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.out.emit("retry", fields{"cluster": r.name, "name": leaseName, "message": err.Error()})
			}
			continue
		}
		r.out.emit("lease-renewed", fields{"cluster": r.name, "name": leaseName,
			"renewTime": renewed.Spec.RenewTime.UTC().Format(time.RFC3339Nano)})
	}
}

// waitFor polls get every 100 ms until it reports true, the timeout passes or ctx ends.
func waitFor[T any](ctx context.Context, timeout time.Duration, get func() (T, bool)) (T, error) {
	deadline := time.Now().Add(timeout)
	for {
		if v, ok := get(); ok {
			return v, nil
		}
		if time.Now().After(deadline) {
			var zero T
			return zero, fmt.Errorf("not received within %s", timeout)
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// createCSR publishes the join flow's CSR (a fresh key; signer, usages, subject and label as the klusterlet's gRPC
// registration driver sets them) and starts waiting for its certificate in the background.
func (r *registrationAgent) createCSR(opCtx, ctx context.Context, csrHolder *csr.ClientHolder) {
	subject := agentSubject(r.name, r.beh.join.agentName)
	keyPEM, reqPEM, err := newAgentKeyAndRequest(subject)
	if err != nil {
		r.out.error(r.name, "build csr", err)
		return
	}
	labels := map[string]string{clusterNameLabel: r.name}
	req := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: r.name + "-", Labels: labels},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: reqPEM, SignerName: r.beh.join.signerName, Usages: csrUsages,
		},
	}
	if r.beh.join.expirationSeconds > 0 {
		req.Spec.ExpirationSeconds = &r.beh.join.expirationSeconds
	}
	created, err := csrHolder.Clients().Create(opCtx, req, metav1.CreateOptions{})
	if err != nil {
		r.out.error(r.name, "create csr", err)
		return
	}
	usages := make([]string, 0, len(csrUsages))
	for _, u := range csrUsages {
		usages = append(usages, string(u))
	}
	f := fields{"cluster": r.name, "name": created.Name, "signerName": r.beh.join.signerName, "usages": usages,
		"commonName": subject.CommonName, "organizations": subject.Organization, "labels": labels}
	if req.Spec.ExpirationSeconds != nil {
		f["expirationSeconds"] = *req.Spec.ExpirationSeconds
	}
	r.out.emit("csr-create-published", f)
	p := pendingCSR{name: created.Name, keyPEM: keyPEM, subject: subject, created: time.Now()}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.awaitCertificate(ctx, csrHolder.Informer(), p)
	}()
}
