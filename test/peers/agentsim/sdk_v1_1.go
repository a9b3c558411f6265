//go:build sdk_v1_1

package main

import (
	"time"

	"k8s.io/client-go/tools/cache"

	clusterv1 "open-cluster-management.io/api/cluster/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/store"
	workstore "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/store"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic"
)

// sdk-go v1.1.x adapters. In this generation the agent store keeps no objects of its own: it reads the informer's
// store, so the informer must be attached to it (the v1.1 klusterlet does the same). The reconnect backoff lives in
// package generic.

const sdkGeneration = "v1.1"

func setReconnectDelay(d time.Duration) {
	generic.DelayFn = func() time.Duration { return d }
}

func attachInformer(ws *workstore.AgentInformerWatcherStore, informer cache.SharedIndexInformer) {
	ws.SetInformer(informer)
}

func storeHas(ws *workstore.AgentInformerWatcherStore, namespace, name string) bool {
	_, exists, err := ws.Get(namespace, name)
	return err == nil && exists
}

func attachClusterInformer(s *store.AgentInformerWatcherStore[*clusterv1.ManagedCluster],
	informer cache.SharedIndexInformer) {
	s.SetInformer(informer)
}
