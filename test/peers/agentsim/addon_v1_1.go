//go:build sdk_v1_1

package main

import (
	"context"

	addonv1alpha1 "open-cluster-management.io/api/addon/v1alpha1"
	addoninformers "open-cluster-management.io/api/client/addon/informers/externalversions"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/addon"
	clientoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/store"
)

// sdk-go v1.1: one addon package, v1alpha1 ManagedClusterAddOn data type; the store reads the informer's store.
const addonAPIVersion = "addon.open-cluster-management.io/v1alpha1"

func (r *registrationAgent) startAddonClient(ctx context.Context) error {
	addonStore := store.NewAgentInformerWatcherStore[*addonv1alpha1.ManagedClusterAddOn]()
	clientset, err := addon.ManagedClusterAddOnInterface(ctx,
		clientoptions.NewGenericClientOptions(r.grpcOpts, addon.NewManagedClusterAddOnCodec(), r.name).
			WithClusterName(r.name).WithClientWatcherStore(addonStore))
	if err != nil {
		return err
	}
	factory := addoninformers.NewSharedInformerFactoryWithOptions(clientset, 0, addoninformers.WithNamespace(r.name))
	informer := factory.Addon().V1alpha1().ManagedClusterAddOns().Informer()
	addonStore.SetInformer(informer)
	addons := clientset.AddonV1alpha1().ManagedClusterAddOns(r.name)
	return r.runAddonInformer(ctx, factory, informer, func(obj any) (addonRef, bool) {
		a, ok := obj.(*addonv1alpha1.ManagedClusterAddOn)
		if !ok {
			return addonRef{}, false
		}
		return addonRef{name: a.Name, conditions: a.Status.Conditions, patch: func(ctx context.Context, data []byte) error {
			_, err := addons.Patch(ctx, a.Name, mergePatch, data, patchOptions, "status")
			return err
		}}, true
	})
}
