package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	workv1 "open-cluster-management.io/api/work/v1"
)

// The finalizer the klusterlet work agent puts on every ManifestWork it applies.
const workCleanupFinalizer = "cluster.open-cluster-management.io/manifest-work-cleanup"

// Work-level condition types (api work/v1).
const (
	conditionApplied   = "Applied"
	conditionAvailable = "Available"
)

// patchMeta is the metadata part of every merge patch: uid and resourceVersion act as preconditions, as in the
// klusterlet's patcher. The sdk-go agent client refuses a patch without a resourceVersion.
type patchMeta struct {
	UID             string    `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
	Finalizers      *[]string `json:"finalizers,omitempty"`
}

type metaOnlyPatch struct {
	Metadata patchMeta `json:"metadata"`
}

type statusPatch struct {
	Metadata patchMeta                 `json:"metadata"`
	Status   workv1.ManifestWorkStatus `json:"status"`
}

// hasFinalizer reports whether the work carries the cleanup finalizer.
func hasFinalizer(work *workv1.ManifestWork) bool {
	for _, f := range work.Finalizers {
		if f == workCleanupFinalizer {
			return true
		}
	}
	return false
}

// addFinalizerPatch returns a merge patch that appends the cleanup finalizer.
func addFinalizerPatch(work *workv1.ManifestWork) ([]byte, error) {
	finalizers := append(append([]string{}, work.Finalizers...), workCleanupFinalizer)
	return json.Marshal(metaOnlyPatch{Metadata: patchMeta{
		UID: string(work.UID), ResourceVersion: work.ResourceVersion, Finalizers: &finalizers,
	}})
}

// removeFinalizersPatch returns a merge patch that removes every finalizer (JSON null deletes the field).
func removeFinalizersPatch(work *workv1.ManifestWork) []byte {
	m := map[string]any{"metadata": map[string]any{
		"uid": string(work.UID), "resourceVersion": work.ResourceVersion, "finalizers": nil,
	}}
	data, _ := json.Marshal(m)
	return data
}

// statusIsCurrent reports whether the work already has an Applied condition for its current generation, i.e.
// whether the automatic status for this generation was published (or replaced by a publish-status command).
func statusIsCurrent(work *workv1.ManifestWork) bool {
	c := meta.FindStatusCondition(work.Status.Conditions, conditionApplied)
	return c != nil && c.ObservedGeneration == work.Generation
}

// appliedStatus builds the status a healthy agent reports: Applied=True and Available=True observed at the work's
// generation, and one resourceStatus entry (Applied and Available) per manifest.
func appliedStatus(work *workv1.ManifestWork) workv1.ManifestWorkStatus {
	status := *work.Status.DeepCopy()
	gen := work.Generation
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: conditionApplied, Status: metav1.ConditionTrue, ObservedGeneration: gen,
		Reason: "AppliedManifestWorkComplete", Message: "Apply manifest work complete",
	})
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type: conditionAvailable, Status: metav1.ConditionTrue, ObservedGeneration: gen,
		Reason: "ResourcesAvailable", Message: "All resources are available",
	})
	manifests := make([]workv1.ManifestCondition, 0, len(work.Spec.Workload.Manifests))
	for i, m := range work.Spec.Workload.Manifests {
		rm := resourceMeta(int32(i), m.Raw)
		manifests = append(manifests, workv1.ManifestCondition{
			ResourceMeta: rm,
			Conditions: []metav1.Condition{
				{Type: conditionApplied, Status: metav1.ConditionTrue, ObservedGeneration: gen,
					Reason: "AppliedManifestComplete", Message: "Apply manifest complete",
					LastTransitionTime: metav1.Now()},
				{Type: conditionAvailable, Status: metav1.ConditionTrue, ObservedGeneration: gen,
					Reason: "ResourceAvailable", Message: "Resource is available",
					LastTransitionTime: metav1.Now()},
			},
		})
	}
	status.ResourceStatus = workv1.ManifestResourceStatus{Manifests: manifests}
	return status
}

// resourceMeta identifies one manifest. The resource name is a naive lower-case plural of the kind: agentsim has no
// discovery client, and the hub only echoes the value.
func resourceMeta(ordinal int32, raw []byte) workv1.ManifestResourceMeta {
	rm := workv1.ManifestResourceMeta{Ordinal: ordinal}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return rm
	}
	gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
	rm.Group, rm.Version, rm.Kind = gv.Group, gv.Version, obj.GetKind()
	rm.Resource = strings.ToLower(obj.GetKind()) + "s"
	rm.Name, rm.Namespace = obj.GetName(), obj.GetNamespace()
	return rm
}

// statusPatchFor returns a merge patch for the "status" subresource that sets the given status.
func statusPatchFor(work *workv1.ManifestWork, status workv1.ManifestWorkStatus) ([]byte, error) {
	return json.Marshal(statusPatch{
		Metadata: patchMeta{UID: string(work.UID), ResourceVersion: work.ResourceVersion},
		Status:   status,
	})
}

// conditionInput is a condition as given in a publish-status command.
type conditionInput struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	Reason             string `json:"reason,omitempty"`
	Message            string `json:"message,omitempty"`
	ObservedGeneration *int64 `json:"observedGeneration,omitempty"`
}

// withConditions returns the work's status with the given conditions set (merged by type). observedGeneration
// defaults to the work's generation, reason to "AgentSim".
func withConditions(work *workv1.ManifestWork, in []conditionInput) (workv1.ManifestWorkStatus, error) {
	status := *work.Status.DeepCopy()
	for _, c := range in {
		if c.Type == "" {
			return status, fmt.Errorf("condition without type")
		}
		switch metav1.ConditionStatus(c.Status) {
		case metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown:
		default:
			return status, fmt.Errorf("condition %s: status must be True, False or Unknown, got %q", c.Type, c.Status)
		}
		gen := work.Generation
		if c.ObservedGeneration != nil {
			gen = *c.ObservedGeneration
		}
		reason := c.Reason
		if reason == "" {
			reason = "AgentSim"
		}
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: c.Type, Status: metav1.ConditionStatus(c.Status), ObservedGeneration: gen,
			Reason: reason, Message: c.Message,
		})
	}
	return status, nil
}

// conditionSummary lists {type, status, reason, observedGeneration} for each condition, for output lines.
func conditionSummary(conds []metav1.Condition) []fields {
	out := make([]fields, 0, len(conds))
	for _, c := range conds {
		out = append(out, fields{
			"type": c.Type, "status": string(c.Status), "reason": c.Reason, "observedGeneration": c.ObservedGeneration,
		})
	}
	return out
}
