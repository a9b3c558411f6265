package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubetypes "k8s.io/apimachinery/pkg/types"

	workv1 "open-cluster-management.io/api/work/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/payload"
	sourcecodec "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/source/codec"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/server"
)

// sourceID is the CloudEvents source of every spec event this reference server sends.
const sourceID = "agentsim-refserver"

// workService is an in-memory manifestbundles Service for sdk-go's gRPC broker: the hub's view of the works.
type workService struct {
	out     *emitter
	codec   *sourcecodec.ManifestBundleCodec
	mu      sync.Mutex
	works   map[kubetypes.UID]*workv1.ManifestWork
	handler server.EventHandler
}

var _ server.Service = &workService{}

func newWorkService(out *emitter) *workService {
	return &workService{out: out, codec: sourcecodec.NewManifestBundleCodec(), works: map[kubetypes.UID]*workv1.ManifestWork{}}
}

// RegisterHandler keeps the broker, which routes spec events to subscribed agents.
func (s *workService) RegisterHandler(_ context.Context, handler server.EventHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = handler
}

// List answers the broker's spec resync for one cluster.
func (s *workService) List(_ context.Context, opts types.ListOptions) ([]*cloudevents.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evts := []*cloudevents.Event{}
	for _, w := range s.sortedLocked() {
		if opts.ClusterName != "" && w.Namespace != opts.ClusterName {
			continue
		}
		evt, err := s.encode(types.UpdateRequestAction, w)
		if err != nil {
			return nil, err
		}
		evts = append(evts, evt)
	}
	s.out.emit("resync", fields{"cluster": opts.ClusterName, "works": len(evts)})
	return evts, nil
}

// HandleStatusUpdate receives every agent publish except resync requests.
func (s *workService) HandleStatusUpdate(_ context.Context, evt *cloudevents.Event) error {
	eventType, err := types.ParseCloudEventsType(evt.Type())
	if err != nil {
		return err
	}
	if eventType.SubResource != types.SubResourceStatus {
		return fmt.Errorf("unsupported event type %s", evt.Type())
	}
	reported, err := s.codec.Decode(evt)
	if err != nil {
		s.out.emit("status-rejected", fields{"type": evt.Type(), "message": err.Error()})
		return err
	}
	cluster, _ := evt.Extensions()[types.ExtensionClusterName].(string)
	f := fields{
		"cluster": cluster, "uid": string(reported.UID), "name": reported.Name, "type": evt.Type(),
		"resourceVersion": reported.Generation, "conditions": summary(reported.Status.Conditions),
		"manifests": len(reported.Status.ResourceStatus.Manifests), "source": evt.Source(),
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	w, known := s.works[reported.UID]
	f["known"] = known
	s.out.emit("status", f)
	if !known {
		return nil
	}
	if meta.IsStatusConditionTrue(reported.Status.Conditions, common.ResourceDeleted) {
		delete(s.works, reported.UID)
		s.out.emit("deleted", fields{"cluster": w.Namespace, "uid": string(w.UID), "name": w.Name})
		return nil
	}
	if reported.Generation < w.Generation {
		s.out.emit("status-stale", fields{"uid": string(w.UID), "resourceVersion": reported.Generation,
			"generation": w.Generation})
		return nil
	}
	w.Status = reported.Status
	return nil
}

func (s *workService) encode(action types.EventAction, w *workv1.ManifestWork) (*cloudevents.Event, error) {
	return s.codec.Encode(sourceID, types.CloudEventsType{
		CloudEventsDataType: payload.ManifestBundleEventDataType,
		SubResource:         types.SubResourceSpec,
		Action:              action,
	}, w)
}

// send pushes a spec event through the broker to every subscriber of the work's cluster.
func (s *workService) send(ctx context.Context, action types.EventAction, w *workv1.ManifestWork) error {
	evt, err := s.encode(action, w)
	if err != nil {
		return err
	}
	if s.handler == nil {
		return fmt.Errorf("no broker registered")
	}
	return s.handler.HandleEvent(ctx, evt)
}

func (s *workService) sortedLocked() []*workv1.ManifestWork {
	out := make([]*workv1.ManifestWork, 0, len(s.works))
	for _, w := range s.works {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out
}

func (s *workService) findLocked(cluster, name, uid string) (*workv1.ManifestWork, error) {
	for _, w := range s.works {
		if (uid != "" && string(w.UID) == uid) || (uid == "" && w.Namespace == cluster && w.Name == name) {
			return w, nil
		}
	}
	return nil, fmt.Errorf("no work cluster=%q name=%q uid=%q", cluster, name, uid)
}

func configMaps(work string, gen int64, n int) []workv1.Manifest {
	out := make([]workv1.Manifest, 0, n)
	for i := 0; i < n; i++ {
		raw := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s-%d","namespace":"default"},`+
			`"data":{"generation":"%d"}}`, work, i, gen)
		out = append(out, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(raw)}})
	}
	return out
}

// create adds a work with n ConfigMap manifests and sends create_request.
func (s *workService) create(ctx context.Context, cluster, name string, n int, labels map[string]string) (*workv1.ManifestWork, error) {
	if cluster == "" || name == "" {
		return nil, fmt.Errorf("create needs cluster and name")
	}
	if n <= 0 {
		n = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.findLocked(cluster, name, ""); err == nil {
		return nil, fmt.Errorf("work %s/%s exists", cluster, name)
	}
	w := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: cluster, UID: kubetypes.UID(uuid.NewString()), Generation: 1,
			ResourceVersion: "1", CreationTimestamp: metav1.Now(), Labels: labels,
		},
		Spec: workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{Manifests: configMaps(name, 1, n)}},
	}
	s.works[w.UID] = w
	return w.DeepCopy(), s.send(ctx, types.CreateRequestAction, w)
}

// update bumps the generation (new manifest content) and sends update_request.
func (s *workService) update(ctx context.Context, cluster, name, uid string) (*workv1.ManifestWork, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.findLocked(cluster, name, uid)
	if err != nil {
		return nil, err
	}
	if !w.DeletionTimestamp.IsZero() {
		return nil, fmt.Errorf("work %s/%s is deleting", w.Namespace, w.Name)
	}
	w.Generation++
	w.ResourceVersion = fmt.Sprint(w.Generation)
	w.Spec.Workload.Manifests = configMaps(w.Name, w.Generation, len(w.Spec.Workload.Manifests))
	return w.DeepCopy(), s.send(ctx, types.UpdateRequestAction, w)
}

// remove marks the work deleting and sends it (with the deletiontimestamp extension, no data). The work is
// forgotten once the agent reports Deleted=True.
func (s *workService) remove(ctx context.Context, cluster, name, uid string) (*workv1.ManifestWork, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.findLocked(cluster, name, uid)
	if err != nil {
		return nil, err
	}
	if w.DeletionTimestamp.IsZero() {
		now := metav1.NewTime(time.Now())
		w.DeletionTimestamp = &now
	}
	return w.DeepCopy(), s.send(ctx, types.DeleteRequestAction, w)
}

func summary(conds []metav1.Condition) []fields {
	out := make([]fields, 0, len(conds))
	for _, c := range conds {
		out = append(out, fields{"type": c.Type, "status": string(c.Status), "observedGeneration": c.ObservedGeneration})
	}
	return out
}
