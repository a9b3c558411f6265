// Command agentsim simulates N OCM managed-cluster work agents with the real open-cluster-management.io/sdk-go
// clients, for testing a hub-side CloudEvents gRPC server. It writes JSON lines to stdout (one per fact) and takes
// JSON-line commands on stdin. See README.md for the contract.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

const sdkModule = "open-cluster-management.io/sdk-go"

// sdkVersion returns the sdk-go module version linked into this binary.
func sdkVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == sdkModule {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "unknown"
}

type cliOptions struct {
	conn           connectionFlags
	allowRemote    bool
	clusters       string
	mode           string
	reconnectDelay time.Duration
	duration       time.Duration
	beh            behaviour
	regBeh         registrationBehaviour
	verbosity      int
}

func parseFlags(args []string) (cliOptions, error) {
	var o cliOptions
	fs := flag.NewFlagSet("agentsim", flag.ContinueOnError)
	fs.StringVar(&o.conn.server, "server", "", "gRPC server host:port. Without token and client certificate "+
		"sdk-go dials plaintext (h2c).")
	fs.StringVar(&o.conn.caFile, "ca-file", "", "CA bundle for the server certificate (enables TLS with --token "+
		"or --client-cert)")
	fs.StringVar(&o.conn.token, "token", "", "bearer token (requires --ca-file); "+clusterPlaceholder+
		" is replaced by the cluster name")
	fs.StringVar(&o.conn.tokenFile, "token-file", "", "file holding the bearer token; "+clusterPlaceholder+
		" is replaced by the cluster name")
	fs.StringVar(&o.conn.clientCert, "client-cert", "", "client certificate file for mTLS; "+clusterPlaceholder+
		" is replaced by the cluster name")
	fs.StringVar(&o.conn.clientKey, "client-key", "", "client key file for mTLS; "+clusterPlaceholder+
		" is replaced by the cluster name")
	fs.StringVar(&o.conn.grpcConfig, "grpc-config", "", "sdk-go gRPC config YAML to use instead of the connection "+
		"flags; "+clusterPlaceholder+" in it is replaced by the cluster name")
	fs.BoolVar(&o.allowRemote, "allow-non-loopback", false, "allow a --server that is not a loopback address")
	fs.BoolVar(&o.conn.keepAlive, "keepalive", false, "enable client keepalive pings (sdk-go defaults: 30s/10s)")
	fs.DurationVar(&o.conn.serverHealthinessTimeout, "server-healthiness-timeout", 0, "reconnect when no server "+
		"heartbeat arrives for this long (0 = off, the sdk-go default)")
	fs.StringVar(&o.clusters, "clusters", "", "comma-separated cluster names to start with")
	fs.StringVar(&o.mode, "mode", "work", "work, registration (managedcluster, csr, lease, event clients) or both")
	fs.DurationVar(&o.regBeh.leaseInterval, "lease-interval", 10*time.Second, "registration: lease renewal period")
	fs.DurationVar(&o.regBeh.waitForHub, "hub-wait", 60*time.Second, "registration: how long to wait for the hub "+
		"to send the ManagedCluster and the lease before reporting an error")
	fs.StringVar(&o.regBeh.join.signerName, "csr-signer", grpcSignerName, "registration: spec.signerName of the "+
		"join flow's CSR (OCM's gRPC registration driver uses "+grpcSignerName+")")
	fs.StringVar(&o.regBeh.join.agentName, "agent-name", "agentsim", "registration: agent name in the requested "+
		"certificate CN "+subjectPrefix+"<cluster>:<agent>")
	fs.DurationVar(&o.regBeh.join.csrWait, "csr-wait", 2*time.Minute, "registration: how long to wait for the hub "+
		"to approve the CSR and issue its certificate before reporting an error")
	var expiration int
	fs.IntVar(&expiration, "csr-expiration-seconds", 0, "registration: spec.expirationSeconds of the CSR (0 = unset)")
	fs.StringVar(&o.regBeh.join.certDir, "cert-dir", "", "registration: write the issued certificate and its key "+
		"to <dir>/<cluster>/tls.crt and tls.key")
	fs.BoolVar(&o.regBeh.join.statusPatch, "cluster-status-patch", true, "registration: patch the ManagedCluster "+
		"status (Available=True, version, capacity) once the hub has sent it; false leaves every condition to the hub")
	fs.DurationVar(&o.reconnectDelay, "reconnect-delay", 2*time.Second, "sdk-go reconnect backoff (DelayFn), "+
		"replacing the default 5s..1m")
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "hard upper bound on run time; the process exits by "+
		"itself")
	fs.BoolVar(&o.beh.autoStatus, "auto-status", true, "publish Applied/Available for every new generation")
	fs.BoolVar(&o.beh.autoDelete, "auto-delete", true, "remove finalizers of deleting works")
	fs.DurationVar(&o.beh.informerResync, "informer-resync", 0, "ManifestWork informer resync period (0 = off)")
	fs.DurationVar(&o.beh.opTimeout, "op-timeout", 30*time.Second, "timeout of one patch or publish")
	fs.IntVar(&o.beh.maxRetries, "max-retries", 10, "retries per work before giving up with an error event")
	fs.IntVar(&o.verbosity, "v", 0, "sdk-go/klog log verbosity (logs go to stderr)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.conn.server != "" && !o.allowRemote {
		if err := checkLoopback(o.conn.server); err != nil {
			return o, err
		}
	}
	switch o.mode {
	case "work", "registration", "both":
	default:
		return o, fmt.Errorf("--mode must be work, registration or both, got %q", o.mode)
	}
	if o.regBeh.leaseInterval <= 0 || o.regBeh.waitForHub <= 0 || o.regBeh.join.csrWait <= 0 {
		return o, fmt.Errorf("--lease-interval, --hub-wait and --csr-wait must be positive")
	}
	// Kubernetes refuses expirationSeconds below 600; a test hub may accept less, so only the range is checked.
	if expiration < 0 || expiration > math.MaxInt32 {
		return o, fmt.Errorf("--csr-expiration-seconds must be between 0 and %d", math.MaxInt32)
	}
	o.regBeh.join.expirationSeconds = int32(expiration)
	if o.regBeh.join.signerName == "" || o.regBeh.join.agentName == "" {
		return o, fmt.Errorf("--csr-signer and --agent-name must not be empty")
	}
	if o.duration <= 0 {
		return o, fmt.Errorf("--duration must be positive")
	}
	if o.reconnectDelay <= 0 {
		return o, fmt.Errorf("--reconnect-delay must be positive")
	}
	if o.beh.maxRetries < 0 || o.beh.opTimeout <= 0 {
		return o, fmt.Errorf("--max-retries must be >= 0 and --op-timeout positive")
	}
	return o, nil
}

func splitClusters(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

func main() {
	os.Exit(run())
}

func run() int {
	out := newEmitter(os.Stdout)
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "agentsim:", err)
		out.error("", "flags", err)
		return 2
	}

	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", fmt.Sprint(opts.verbosity))
	_ = klogFlags.Set("logtostderr", "true")
	setReconnectDelay(opts.reconnectDelay)

	cfgDir, err := os.MkdirTemp("", "agentsim-")
	if err != nil {
		out.error("", "temp dir", err)
		return 1
	}
	defer os.RemoveAll(cfgDir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts.regBeh.opTimeout = opts.beh.opTimeout
	sim := newSimulator(ctx, out, opts.conn, cfgDir, opts.mode, opts.beh, opts.regBeh)

	clusters := splitClusters(opts.clusters)
	for _, c := range clusters {
		if err := sim.startCluster(c, false); err != nil {
			out.error(c, "start cluster", err)
		}
	}
	out.emit("ready", fields{
		"sdk": sdkVersion(), "sdkGeneration": sdkGeneration, "clusters": sim.clusterNames(), "mode": opts.mode,
		"server": opts.conn.server, "reconnectDelay": opts.reconnectDelay.String(),
		"serverHealthinessTimeout": opts.conn.serverHealthinessTimeout.String(), "pid": os.Getpid(),
	})

	reason := make(chan string, 3)
	go func() {
		if readCommands(os.Stdin, sim, out) {
			reason <- "quit"
		} else {
			reason <- "stdin-eof"
		}
	}()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	timer := time.NewTimer(opts.duration)
	defer timer.Stop()

	var why string
	select {
	case why = <-reason:
	case sig := <-signals:
		why = "signal " + sig.String()
	case <-timer.C:
		why = "duration"
	}

	// A second signal, or a stop that hangs, must not keep the process alive.
	go func() {
		select {
		case <-signals:
		case <-time.After(20 * time.Second):
		}
		out.emit("exit", fields{"reason": why, "forced": true})
		dumpGoroutines()
		os.Exit(1)
	}()
	sim.stopAll()
	cancel()
	out.emit("exit", fields{"reason": why})
	return 0
}
