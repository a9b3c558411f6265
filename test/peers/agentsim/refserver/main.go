// Command refserver is a reference peer for agentsim's self-test: sdk-go's own gRPC CloudEvents broker (plaintext,
// heartbeat on) with an in-memory manifestbundles Service whose works are created, updated and deleted by JSON-line
// commands on stdin. Every fact goes to stdout as one JSON line. It is test-only code.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/payload"
	pbv1 "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc/protobuf/v1"
	cloudeventsgrpc "open-cluster-management.io/sdk-go/pkg/cloudevents/server/grpc"
)

type fields map[string]any

type emitter struct {
	mu sync.Mutex
	w  io.Writer
}

func (e *emitter) emit(event string, f fields) {
	line := fields{"t": time.Now().UTC().Format(time.RFC3339Nano), "event": event}
	for k, v := range f {
		line[k] = v
	}
	data, err := json.Marshal(line)
	if err != nil {
		data = []byte(fmt.Sprintf(`{"event":"error","message":%q}`, err.Error()))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(append(data, '\n'))
}

type command struct {
	ID        any               `json:"id"`
	Cmd       string            `json:"cmd"`
	Cluster   string            `json:"cluster"`
	Name      string            `json:"name"`
	UID       string            `json:"uid"`
	Manifests int               `json:"manifests"`
	Labels    map[string]string `json:"labels"`
	// join flow (join_services.go)
	Sign             *bool            `json:"sign"`
	Reason           string           `json:"reason"`
	Message          string           `json:"message"`
	Conditions       []conditionInput `json:"conditions"`
	HubAcceptsClient *bool            `json:"hubAcceptsClient"`
}

// conditionInput is one condition of a set-cluster-conditions command.
type conditionInput struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	heartbeat := flag.Duration("heartbeat-interval", 10*time.Second, "broker heartbeat interval (sdk-go default 10s)")
	noHeartbeat := flag.Bool("heartbeat-disabled", false, "disable broker heartbeats")
	duration := flag.Duration("duration", 10*time.Minute, "hard upper bound on run time")
	certTTL := flag.Duration("cert-duration", 24*time.Hour, "validity of certificates issued for CSRs without "+
		"spec.expirationSeconds")
	verbosity := flag.Int("v", 0, "klog verbosity (stderr)")
	flag.Parse()

	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", fmt.Sprint(*verbosity))

	out := &emitter{w: os.Stdout}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !(host == "127.0.0.1" || host == "localhost" || host == "::1") {
		out.emit("error", fields{"message": "--listen must be a loopback host:port"})
		os.Exit(2)
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		out.emit("error", fields{"message": err.Error()})
		os.Exit(1)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The broker options are set directly: BrokerOptions.Validate would refuse intervals below 10s, which the
	// heartbeat-timeout tests want.
	broker := cloudeventsgrpc.NewGRPCBroker(&cloudeventsgrpc.BrokerOptions{
		HeartbeatDisabled: *noHeartbeat, HeartbeatCheckInterval: *heartbeat,
	})
	svc := newWorkService(out)
	broker.RegisterService(ctx, payload.ManifestBundleEventDataType, svc)
	ca, err := newTestCA()
	if err != nil {
		out.emit("error", fields{"message": "test CA: " + err.Error()})
		os.Exit(1)
	}
	reg := newRegistrationServices(out, ca, *certTTL)
	reg.register(ctx, broker)
	srv := grpc.NewServer()
	pbv1.RegisterCloudEventServiceServer(srv, &observingBroker{GRPCBroker: broker, out: out})
	go func() {
		if err := srv.Serve(&countingListener{Listener: lis, out: out}); err != nil {
			out.emit("error", fields{"message": "serve: " + err.Error()})
		}
	}()
	go watchSubscribers(ctx, broker, out)
	out.emit("listening", fields{"addr": lis.Addr().String(), "pid": os.Getpid()})

	done := make(chan string, 2)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			var cmd command
			if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
				out.emit("reply", fields{"ok": false, "error": err.Error()})
				continue
			}
			if cmd.Cmd == "quit" {
				out.emit("reply", fields{"id": cmd.ID, "cmd": cmd.Cmd, "ok": true})
				done <- "quit"
				return
			}
			reply := run(ctx, svc, reg, cmd)
			reply["id"], reply["cmd"] = cmd.ID, cmd.Cmd
			out.emit("reply", reply)
		}
		done <- "stdin-eof"
	}()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	var why string
	select {
	case why = <-done:
	case s := <-signals:
		why = s.String()
	case <-time.After(*duration):
		why = "duration"
	}
	cancel()
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		srv.Stop()
	}
	out.emit("exit", fields{"reason": why})
}

func run(ctx context.Context, svc *workService, reg *registrationServices, cmd command) fields {
	opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch cmd.Cmd {
	case "create":
		w, err := svc.create(opCtx, cmd.Cluster, cmd.Name, cmd.Manifests, cmd.Labels)
		if err != nil {
			return fields{"ok": false, "error": err.Error()}
		}
		return fields{"ok": true, "uid": string(w.UID), "name": w.Name, "generation": w.Generation}
	case "update":
		w, err := svc.update(opCtx, cmd.Cluster, cmd.Name, cmd.UID)
		if err != nil {
			return fields{"ok": false, "error": err.Error()}
		}
		return fields{"ok": true, "uid": string(w.UID), "name": w.Name, "generation": w.Generation}
	case "delete":
		w, err := svc.remove(opCtx, cmd.Cluster, cmd.Name, cmd.UID)
		if err != nil {
			return fields{"ok": false, "error": err.Error()}
		}
		return fields{"ok": true, "uid": string(w.UID), "name": w.Name, "generation": w.Generation}
	case "list":
		svc.mu.Lock()
		defer svc.mu.Unlock()
		works := []fields{}
		for _, w := range svc.sortedLocked() {
			works = append(works, fields{"cluster": w.Namespace, "name": w.Name, "uid": string(w.UID),
				"generation": w.Generation, "deleting": !w.DeletionTimestamp.IsZero(),
				"conditions": summary(w.Status.Conditions)})
		}
		return fields{"ok": true, "works": works}
	case "approve-csr":
		return reg.approveCSRs(opCtx, cmd)
	case "sign-csr":
		return reg.signCSRs(opCtx, cmd)
	case "deny-csr":
		return reg.denyCSRs(opCtx, cmd)
	case "set-cluster-conditions":
		return reg.setClusterConditions(opCtx, cmd)
	case "ca":
		return fields{"ok": true, "commonName": reg.ca.cert.Subject.CommonName, "pem": string(reg.ca.certPEM)}
	default:
		return fields{"ok": false, "error": fmt.Sprintf("unknown cmd %q (create, update, delete, list, approve-csr, "+
			"sign-csr, deny-csr, set-cluster-conditions, ca, quit)", cmd.Cmd)}
	}
}

// watchSubscribers emits "subscribers" whenever the set of clusters with a live Subscribe stream changes.
func watchSubscribers(ctx context.Context, broker *cloudeventsgrpc.GRPCBroker, out *emitter) {
	var last []string
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		cur := broker.Subscribers().UnsortedList()
		slices.Sort(cur)
		if !slices.Equal(cur, last) {
			out.emit("subscribers", fields{"clusters": cur})
			last = cur
		}
	}
}
