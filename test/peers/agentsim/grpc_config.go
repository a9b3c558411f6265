package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// connectionFlags are the command-line settings that describe how every simulated agent dials the server.
type connectionFlags struct {
	server                   string
	caFile                   string
	token                    string
	tokenFile                string
	clientCert               string
	clientKey                string
	serverHealthinessTimeout time.Duration
	keepAlive                bool
	grpcConfig               string
}

// clusterPlaceholder is replaced by the cluster name in --token, --token-file, --client-cert, --client-key and in
// the contents of --grpc-config, so that every simulated cluster can carry its own identity.
const clusterPlaceholder = "{cluster}"

// grpcConfigFile is the subset of sdk-go's GRPCConfig YAML (the file the klusterlet reads through
// --workload-source-config) that agentsim writes. Field names are the documented YAML keys.
type grpcConfigFile struct {
	URL                      string           `json:"url"`
	CAFile                   string           `json:"caFile,omitempty"`
	ClientCertFile           string           `json:"clientCertFile,omitempty"`
	ClientKeyFile            string           `json:"clientKeyFile,omitempty"`
	Token                    string           `json:"token,omitempty"`
	TokenFile                string           `json:"tokenFile,omitempty"`
	KeepAliveConfig          *keepAliveConfig `json:"keepAliveConfig,omitempty"`
	ServerHealthinessTimeout string           `json:"serverHealthinessTimeout,omitempty"`
}

type keepAliveConfig struct {
	Enable bool `json:"enable"`
}

// writeClusterConfig writes the gRPC client config for one cluster into dir and returns its path. The agent then
// loads it with sdk-go's own BuildGRPCOptionsFromFlags, exactly like the klusterlet work agent does.
func (c connectionFlags) writeClusterConfig(dir, cluster string) (string, error) {
	path := filepath.Join(dir, cluster+".grpc.yaml")
	var data []byte
	if c.grpcConfig != "" {
		raw, err := os.ReadFile(c.grpcConfig)
		if err != nil {
			return "", fmt.Errorf("read --grpc-config: %w", err)
		}
		data = []byte(strings.ReplaceAll(string(raw), clusterPlaceholder, cluster))
	} else {
		if c.server == "" {
			return "", fmt.Errorf("--server host:port (or --grpc-config) is required")
		}
		cfg := grpcConfigFile{
			URL:            c.server,
			CAFile:         c.caFile,
			ClientCertFile: strings.ReplaceAll(c.clientCert, clusterPlaceholder, cluster),
			ClientKeyFile:  strings.ReplaceAll(c.clientKey, clusterPlaceholder, cluster),
			Token:          strings.ReplaceAll(c.token, clusterPlaceholder, cluster),
			TokenFile:      strings.ReplaceAll(c.tokenFile, clusterPlaceholder, cluster),
		}
		if c.keepAlive {
			cfg.KeepAliveConfig = &keepAliveConfig{Enable: true}
		}
		if c.serverHealthinessTimeout > 0 {
			cfg.ServerHealthinessTimeout = c.serverHealthinessTimeout.String()
		}
		var err error
		if data, err = yaml.Marshal(cfg); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// checkLoopback refuses a --server that is not on this machine's loopback: agentsim is a test peer, and test
// traffic must stay on loopback unless --allow-non-loopback says otherwise (e.g. a test network namespace).
func checkLoopback(server string) error {
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		return fmt.Errorf("--server %q: %w", server, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--server %q is not a loopback address (127.0.0.0/8, ::1, localhost); "+
		"pass --allow-non-loopback for a test network namespace", server)
}
