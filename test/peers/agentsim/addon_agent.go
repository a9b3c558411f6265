package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// The addon client differs per sdk-go generation (addon_v1_1.go, addon_v1_2.go, addon_v1_3.go); this file holds
// what the three share: on every addon the hub sends that is not yet Available, patch its status to Available.

const mergePatch = kubetypes.MergePatchType

var patchOptions = metav1.PatchOptions{}

// addonRef is the version-independent view of one ManagedClusterAddOn.
type addonRef struct {
	name       string
	conditions []metav1.Condition
	patch      func(ctx context.Context, data []byte) error
}

// informerFactory is the part of a generated shared informer factory that is used here.
type informerFactory interface {
	Start(stopCh <-chan struct{})
}

func (r *registrationAgent) runAddonInformer(ctx context.Context, factory informerFactory,
	informer cache.SharedIndexInformer, view func(obj any) (addonRef, bool)) error {
	handle := func(eventName string) func(obj any) {
		return func(obj any) {
			a, ok := view(obj)
			if !ok {
				return
			}
			r.out.emit(eventName, fields{"cluster": r.name, "name": a.name, "apiVersion": addonAPIVersion,
				"conditions": conditionSummary(a.conditions)})
			if meta.IsStatusConditionTrue(a.conditions, "Available") {
				return
			}
			r.patchAddonStatus(ctx, a)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle("addon-added"),
		UpdateFunc: func(_, obj any) { handle("addon-updated")(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.HasSynced) {
		return fmt.Errorf("addon informer did not sync within 30s")
	}
	return nil
}

// patchAddonStatus reports the addon Available through the status subresource (sdk-go publishes
// status.update_request). It runs in the informer's handler goroutine: the addon client's Patch only publishes.
func (r *registrationAgent) patchAddonStatus(ctx context.Context, a addonRef) {
	conds := append([]metav1.Condition{}, a.conditions...)
	meta.SetStatusCondition(&conds, metav1.Condition{
		Type: "Available", Status: metav1.ConditionTrue, Reason: "AgentSimAvailable",
		Message: "agentsim reports the addon available",
	})
	data, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": conds}})
	if err != nil {
		r.out.error(r.name, "addon status patch", err)
		return
	}
	opCtx, cancel := context.WithTimeout(ctx, r.beh.opTimeout)
	defer cancel()
	if err := a.patch(opCtx, data); err != nil {
		if ctx.Err() == nil {
			r.out.error(r.name, "patch addon "+a.name+" status", err)
		}
		return
	}
	r.out.emit("addon-status-published", fields{"cluster": r.name, "name": a.name, "apiVersion": addonAPIVersion,
		"conditions": conditionSummary(conds)})
}
