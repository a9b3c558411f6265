package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	addonv1alpha1 "open-cluster-management.io/api/addon/v1alpha1"
	addonv1beta1 "open-cluster-management.io/api/addon/v1beta1"
	clusterv1 "open-cluster-management.io/api/cluster/v1"

	cloudeventsaddonv1alpha1 "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/addon/v1alpha1"
	cloudeventsaddonv1beta1 "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/addon/v1beta1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/cluster"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/csr"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/event"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/lease"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/server"
)

// memService is an in-memory Service for one registration data type. accept decides what an agent publish does.
type memService[T generic.ResourceObject] struct {
	out       *emitter
	codec     generic.Codec[T]
	clusterOf func(T) string
	accept    func(ctx context.Context, s *memService[T], t types.CloudEventsType, obj T) error
	listable  bool

	mu      sync.Mutex
	objs    map[string]T // namespace/name
	handler server.EventHandler
}

var _ server.Service = &memService[*clusterv1.ManagedCluster]{}

func key(obj metav1.Object) string { return obj.GetNamespace() + "/" + obj.GetName() }

func (s *memService[T]) RegisterHandler(_ context.Context, h server.EventHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

func (s *memService[T]) List(_ context.Context, opts types.ListOptions) ([]*cloudevents.Event, error) {
	dt := s.codec.EventDataType()
	if !s.listable {
		return nil, apierrors.NewMethodNotSupported(schema.GroupResource{Group: dt.Group, Resource: dt.Resource}, "list")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.objs))
	for k := range s.objs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	evts := []*cloudevents.Event{}
	for _, k := range keys {
		obj := s.objs[k]
		if opts.ClusterName != "" && s.clusterOf(obj) != opts.ClusterName {
			continue
		}
		evt, err := s.codec.Encode(sourceID, types.CloudEventsType{
			CloudEventsDataType: dt, SubResource: types.SubResourceSpec, Action: types.UpdateRequestAction}, obj)
		if err != nil {
			return nil, err
		}
		evts = append(evts, evt)
	}
	s.out.emit("resync", fields{"cluster": opts.ClusterName, "dataType": dt.String(), "objects": len(evts)})
	return evts, nil
}

func (s *memService[T]) HandleStatusUpdate(ctx context.Context, evt *cloudevents.Event) error {
	t, err := types.ParseCloudEventsType(evt.Type())
	if err != nil {
		return err
	}
	obj, err := s.codec.Decode(evt)
	if err != nil {
		s.out.emit("publish-rejected", fields{"type": evt.Type(), "message": err.Error()})
		return err
	}
	return s.accept(ctx, s, *t, obj)
}

// store saves obj with the next resourceVersion and returns the stored copy's accessor.
func (s *memService[T]) store(obj T) (T, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return obj, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := int64(1)
	if prev, ok := s.objs[key(acc)]; ok {
		prevAcc, _ := meta.Accessor(prev)
		n, _ := strconv.ParseInt(prevAcc.GetResourceVersion(), 10, 64)
		next = n + 1
		if acc.GetUID() == "" {
			acc.SetUID(prevAcc.GetUID())
		}
	}
	if acc.GetUID() == "" {
		acc.SetUID(kubetypes.UID(uuid.NewString()))
	}
	acc.SetResourceVersion(strconv.FormatInt(next, 10))
	s.objs[key(acc)] = obj
	return obj, nil
}

func (s *memService[T]) get(namespace, name string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, ok := s.objs[namespace+"/"+name]
	return obj, ok
}

// send pushes a spec event for obj to the subscribers of its cluster.
func (s *memService[T]) send(ctx context.Context, action types.EventAction, obj T) error {
	evt, err := s.codec.Encode(sourceID, types.CloudEventsType{
		CloudEventsDataType: s.codec.EventDataType(), SubResource: types.SubResourceSpec, Action: action}, obj)
	if err != nil {
		return err
	}
	s.mu.Lock()
	h := s.handler
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("no broker registered")
	}
	return h.HandleEvent(ctx, evt)
}

// registrationServices are the hub side of the registration data types, behaving like a small OCM hub: an agent's
// ManagedCluster create is accepted and echoed, and the hub then creates the cluster's lease.
type registrationServices struct {
	ca            *testCA       // signs approved CSRs (join_services.go)
	certTTL       time.Duration // validity of issued certificates when a CSR sets no expirationSeconds
	clusters      *memService[*clusterv1.ManagedCluster]
	leases        *memService[*coordinationv1.Lease]
	csrs          *memService[*certificatesv1.CertificateSigningRequest]
	events        *memService[*eventsv1.Event]
	addonsV1alpha *memService[*addonv1alpha1.ManagedClusterAddOn]
	addonsV1beta  *memService[*addonv1beta1.ManagedClusterAddOn]
}

// addonName is the ManagedClusterAddOn the reference hub creates for every registered cluster, in both API versions
// (sdk-go v1.1 and v1.2 agents subscribe to v1alpha1, v1.3 agents to v1beta1).
const addonName = "agentsim-addon"

// addonStatusAccept stores an agent's addon status patch and sends the updated addon back, like the hub's informer.
func addonStatusAccept[T generic.ResourceObject](out *emitter, apiVersion string, conditionsOf func(T) []metav1.Condition,
	withStatus func(last, reported T) T) func(context.Context, *memService[T], types.CloudEventsType, T) error {
	return func(ctx context.Context, s *memService[T], t types.CloudEventsType, reported T) error {
		if t.Action != types.UpdateRequestAction || t.SubResource != types.SubResourceStatus {
			return fmt.Errorf("managedclusteraddons: unsupported %s %s", t.SubResource, t.Action)
		}
		acc, err := meta.Accessor(reported)
		if err != nil {
			return err
		}
		last, ok := s.get(acc.GetNamespace(), acc.GetName())
		if !ok {
			return apierrors.NewNotFound(addonv1alpha1.Resource("managedclusteraddons"), acc.GetName())
		}
		stored, err := s.store(withStatus(last, reported))
		if err != nil {
			return err
		}
		out.emit("addon-status", fields{"cluster": acc.GetNamespace(), "name": acc.GetName(), "apiVersion": apiVersion,
			"conditions": summary(conditionsOf(stored))})
		return s.send(ctx, types.UpdateRequestAction, stored)
	}
}

func newRegistrationServices(out *emitter, ca *testCA, certTTL time.Duration) *registrationServices {
	r := &registrationServices{ca: ca, certTTL: certTTL}
	r.leases = &memService[*coordinationv1.Lease]{
		out: out, codec: lease.NewLeaseCodec(), listable: true, objs: map[string]*coordinationv1.Lease{},
		clusterOf: func(l *coordinationv1.Lease) string { return l.Namespace },
		accept: func(_ context.Context, s *memService[*coordinationv1.Lease], t types.CloudEventsType,
			l *coordinationv1.Lease) error {
			if t.Action != types.UpdateRequestAction {
				return fmt.Errorf("leases: unsupported action %s", t.Action)
			}
			if _, ok := s.get(l.Namespace, l.Name); !ok {
				return apierrors.NewNotFound(coordinationv1.Resource("leases"), l.Name)
			}
			stored, err := s.store(l)
			if err != nil {
				return err
			}
			renew := ""
			if stored.Spec.RenewTime != nil {
				renew = stored.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
			}
			out.emit("lease-updated", fields{"cluster": l.Namespace, "name": l.Name, "renewTime": renew,
				"resourceVersion": stored.ResourceVersion})
			return nil
		},
	}
	r.clusters = &memService[*clusterv1.ManagedCluster]{
		out: out, codec: cluster.NewManagedClusterCodec(), listable: true, objs: map[string]*clusterv1.ManagedCluster{},
		clusterOf: func(c *clusterv1.ManagedCluster) string { return c.Name },
		accept: func(ctx context.Context, s *memService[*clusterv1.ManagedCluster], t types.CloudEventsType,
			c *clusterv1.ManagedCluster) error {
			switch {
			case t.Action == types.CreateRequestAction:
				if _, ok := s.get("", c.Name); ok {
					return apierrors.NewAlreadyExists(clusterv1.Resource("managedclusters"), c.Name)
				}
				c.CreationTimestamp = metav1.Now()
				stored, err := s.store(c)
				if err != nil {
					return err
				}
				out.emit("managedcluster-created", fields{"cluster": c.Name, "uid": string(stored.UID),
					"hubAcceptsClient": stored.Spec.HubAcceptsClient})
				if err := s.send(ctx, types.CreateRequestAction, stored); err != nil {
					return err
				}
				if err := r.createLease(ctx, c.Name); err != nil {
					return err
				}
				return r.createAddons(ctx, c.Name)
			case t.Action == types.UpdateRequestAction && t.SubResource == types.SubResourceStatus:
				last, ok := s.get("", c.Name)
				if !ok {
					return apierrors.NewNotFound(clusterv1.Resource("managedclusters"), c.Name)
				}
				updated := last.DeepCopy()
				updated.Status = c.Status
				stored, err := s.store(updated)
				if err != nil {
					return err
				}
				out.emit("managedcluster-status", fields{"cluster": c.Name,
					"conditions": summary(stored.Status.Conditions), "kubernetes": stored.Status.Version.Kubernetes})
				return s.send(ctx, types.UpdateRequestAction, stored)
			default:
				return fmt.Errorf("managedclusters: unsupported %s %s", t.SubResource, t.Action)
			}
		},
	}
	r.csrs = &memService[*certificatesv1.CertificateSigningRequest]{
		out: out, codec: csr.NewCSRCodec(), listable: true, objs: map[string]*certificatesv1.CertificateSigningRequest{},
		clusterOf: func(c *certificatesv1.CertificateSigningRequest) string {
			return c.Labels["open-cluster-management.io/cluster-name"]
		},
		accept: func(ctx context.Context, s *memService[*certificatesv1.CertificateSigningRequest],
			t types.CloudEventsType, c *certificatesv1.CertificateSigningRequest) error {
			if t.Action != types.CreateRequestAction {
				return fmt.Errorf("csrs: unsupported action %s", t.Action)
			}
			stored, err := s.store(c)
			if err != nil {
				return err
			}
			cn, orgs := requestSubject(stored)
			usages := []string{}
			for _, u := range stored.Spec.Usages {
				usages = append(usages, string(u))
			}
			f := fields{"cluster": s.clusterOf(stored), "name": stored.Name, "uid": string(stored.UID),
				"signerName": stored.Spec.SignerName, "requestBytes": len(stored.Spec.Request), "usages": usages,
				"labels": stored.Labels, "commonName": cn, "organizations": orgs}
			if stored.Spec.ExpirationSeconds != nil {
				f["expirationSeconds"] = *stored.Spec.ExpirationSeconds
			}
			out.emit("csr-created", f)
			// Like the hub's CSR informer: the created CSR goes back to the agent.
			return s.send(ctx, types.CreateRequestAction, stored)
		},
	}
	r.events = &memService[*eventsv1.Event]{
		out: out, codec: event.NewEventCodec(), listable: false, objs: map[string]*eventsv1.Event{},
		clusterOf: func(e *eventsv1.Event) string { return e.Namespace },
		accept: func(_ context.Context, s *memService[*eventsv1.Event], t types.CloudEventsType, e *eventsv1.Event) error {
			if t.Action != types.CreateRequestAction && t.Action != types.UpdateRequestAction {
				return fmt.Errorf("events: unsupported action %s", t.Action)
			}
			if _, err := s.store(e); err != nil {
				return err
			}
			out.emit("event-created", fields{"cluster": e.Namespace, "name": e.Name, "reason": e.Reason,
				"action": string(t.Action)})
			return nil
		},
	}
	r.addonsV1alpha = &memService[*addonv1alpha1.ManagedClusterAddOn]{
		out: out, codec: cloudeventsaddonv1alpha1.NewManagedClusterAddOnCodec(), listable: true,
		objs:      map[string]*addonv1alpha1.ManagedClusterAddOn{},
		clusterOf: func(a *addonv1alpha1.ManagedClusterAddOn) string { return a.Namespace },
		accept: addonStatusAccept(out, "addon.open-cluster-management.io/v1alpha1",
			func(a *addonv1alpha1.ManagedClusterAddOn) []metav1.Condition { return a.Status.Conditions },
			func(last, reported *addonv1alpha1.ManagedClusterAddOn) *addonv1alpha1.ManagedClusterAddOn {
				updated := last.DeepCopy()
				updated.Status = reported.Status
				return updated
			}),
	}
	r.addonsV1beta = &memService[*addonv1beta1.ManagedClusterAddOn]{
		out: out, codec: cloudeventsaddonv1beta1.NewManagedClusterAddOnCodec(), listable: true,
		objs:      map[string]*addonv1beta1.ManagedClusterAddOn{},
		clusterOf: func(a *addonv1beta1.ManagedClusterAddOn) string { return a.Namespace },
		accept: addonStatusAccept(out, "addon.open-cluster-management.io/v1beta1",
			func(a *addonv1beta1.ManagedClusterAddOn) []metav1.Condition { return a.Status.Conditions },
			func(last, reported *addonv1beta1.ManagedClusterAddOn) *addonv1beta1.ManagedClusterAddOn {
				updated := last.DeepCopy()
				updated.Status = reported.Status
				return updated
			}),
	}
	return r
}

// createAddons is what the hub's addon manager does for an accepted cluster: one addon, in both API versions.
func (r *registrationServices) createAddons(ctx context.Context, clusterName string) error {
	alpha, err := r.addonsV1alpha.store(&addonv1alpha1.ManagedClusterAddOn{
		ObjectMeta: metav1.ObjectMeta{Name: addonName, Namespace: clusterName},
		Spec:       addonv1alpha1.ManagedClusterAddOnSpec{InstallNamespace: "open-cluster-management-agent-addon"},
	})
	if err != nil {
		return err
	}
	if err := r.addonsV1alpha.send(ctx, types.CreateRequestAction, alpha); err != nil {
		return err
	}
	beta, err := r.addonsV1beta.store(&addonv1beta1.ManagedClusterAddOn{
		ObjectMeta: metav1.ObjectMeta{Name: addonName, Namespace: clusterName},
	})
	if err != nil {
		return err
	}
	return r.addonsV1beta.send(ctx, types.CreateRequestAction, beta)
}

// createLease is what the hub's lease controller does for an accepted cluster.
func (r *registrationServices) createLease(ctx context.Context, clusterName string) error {
	l, err := r.leases.store(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "managed-cluster-lease", Namespace: clusterName,
			Labels: map[string]string{"open-cluster-management.io/cluster-name": clusterName}},
		Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: ptr.To[int32](60)},
	})
	if err != nil {
		return err
	}
	return r.leases.send(ctx, types.CreateRequestAction, l)
}

func (r *registrationServices) register(ctx context.Context, broker server.AgentEventServer) {
	broker.RegisterService(ctx, r.clusters.codec.EventDataType(), r.clusters)
	broker.RegisterService(ctx, r.leases.codec.EventDataType(), r.leases)
	broker.RegisterService(ctx, r.csrs.codec.EventDataType(), r.csrs)
	broker.RegisterService(ctx, r.events.codec.EventDataType(), r.events)
	broker.RegisterService(ctx, r.addonsV1alpha.codec.EventDataType(), r.addonsV1alpha)
	broker.RegisterService(ctx, r.addonsV1beta.codec.EventDataType(), r.addonsV1beta)
}
