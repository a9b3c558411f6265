//go:build !sdk_v1_1 && !sdk_v1_2

package main

import (
	"context"

	addonv1beta1 "open-cluster-management.io/api/addon/v1beta1"
	addoninformers "open-cluster-management.io/api/client/addon/informers/externalversions"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/addon"
	cloudeventsaddonv1beta1 "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/addon/v1beta1"
	clientoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/store"
)

// sdk-go v1.3: the agent's addon client speaks the v1beta1 ManagedClusterAddOn data type only.
const addonAPIVersion = "addon.open-cluster-management.io/v1beta1"

func (r *registrationAgent) startAddonClient(ctx context.Context) error {
	addonStore := store.NewAgentInformerWatcherStore[*addonv1beta1.ManagedClusterAddOn]()
	clientset, err := addon.ManagedClusterAddOnInterface(ctx,
		clientoptions.NewGenericClientOptions(r.grpcOpts, cloudeventsaddonv1beta1.NewManagedClusterAddOnCodec(), r.name).
			WithClusterName(r.name).WithClientWatcherStore(addonStore))
	if err != nil {
		return err
	}
	factory := addoninformers.NewSharedInformerFactoryWithOptions(clientset, 0, addoninformers.WithNamespace(r.name))
	informer := factory.Addon().V1beta1().ManagedClusterAddOns().Informer()
	addons := clientset.AddonV1beta1().ManagedClusterAddOns(r.name)
	return r.runAddonInformer(ctx, factory, informer, func(obj any) (addonRef, bool) {
		a, ok := obj.(*addonv1beta1.ManagedClusterAddOn)
		if !ok {
			return addonRef{}, false
		}
		return addonRef{name: a.Name, conditions: a.Status.Conditions, patch: func(ctx context.Context, data []byte) error {
			_, err := addons.Patch(ctx, a.Name, mergePatch, data, patchOptions, "status")
			return err
		}}, true
	})
}
