package main

import (
	"context"

	"github.com/cloudevents/sdk-go/v2/binding"
	"google.golang.org/protobuf/types/known/emptypb"

	pbv1 "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc/protobuf/v1"
	grpcprotocol "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc/protocol"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/payload"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
	cloudeventsgrpc "open-cluster-management.io/sdk-go/pkg/cloudevents/server/grpc"
)

// observingBroker is sdk-go's broker with one addition: it reports each spec resync request (the resource versions
// the agent says it holds) before the broker answers it. The broker itself never exposes that list.
type observingBroker struct {
	*cloudeventsgrpc.GRPCBroker
	out *emitter
}

func (b *observingBroker) Publish(ctx context.Context, req *pbv1.PublishRequest) (*emptypb.Empty, error) {
	if evt, err := binding.ToEvent(ctx, grpcprotocol.NewMessage(req.Event)); err == nil {
		if t, err := types.ParseCloudEventsType(evt.Type()); err == nil && t.Action == types.ResyncRequestAction {
			versions := payload.ResourceVersionList{}
			f := fields{"type": evt.Type(), "source": evt.Source()}
			if cluster, ok := evt.Extensions()[types.ExtensionClusterName].(string); ok {
				f["cluster"] = cluster
				// Whether a Subscribe stream of this cluster is registered yet: if not, the broker's resync answer
				// reaches nobody (sdk-go v1.1 agents resync without waiting for their subscription).
				f["subscribed"] = b.Subscribers().Has(cluster)
			}
			if err := evt.DataAs(&versions); err != nil {
				f["dataError"] = err.Error()
			}
			list := []fields{}
			for _, v := range versions.Versions {
				list = append(list, fields{"resourceID": v.ResourceID, "resourceVersion": v.ResourceVersion})
			}
			f["versions"] = list
			b.out.emit("resync-request", f)
		}
	}
	return b.GRPCBroker.Publish(ctx, req)
}
