//go:build !sdk_v1_1

package main

import (
	"context"
	"time"

	"k8s.io/client-go/tools/cache"

	clusterv1 "open-cluster-management.io/api/cluster/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/store"
	workstore "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/store"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/clients"
)

// sdk-go v1.2.0 and newer adapters. The agent store holds its own objects (the informer only watches it) and the
// reconnect backoff lives in package generic/clients.

const sdkGeneration = "v1.2+"

func setReconnectDelay(d time.Duration) {
	clients.DelayFn = func() time.Duration { return d }
}

func attachInformer(_ *workstore.AgentInformerWatcherStore, _ cache.SharedIndexInformer) {}

func storeHas(ws *workstore.AgentInformerWatcherStore, namespace, name string) bool {
	_, exists, err := ws.Get(context.Background(), namespace, name)
	return err == nil && exists
}

func attachClusterInformer(_ *store.AgentInformerWatcherStore[*clusterv1.ManagedCluster], _ cache.SharedIndexInformer) {
}
