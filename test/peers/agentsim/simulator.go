package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"
)

// simulator owns the simulated clusters: which are running, and what each stopped cluster had in its store.
type simulator struct {
	out    *emitter
	conn   connectionFlags
	cfgDir string
	beh    behaviour
	ctx    context.Context

	mu       sync.Mutex
	running  map[string]*clusterAgent
	lastSeen map[string][]workv1.ManifestWork // store contents at the last stop-cluster
}

func newSimulator(ctx context.Context, out *emitter, conn connectionFlags, cfgDir string, beh behaviour) *simulator {
	return &simulator{
		out: out, conn: conn, cfgDir: cfgDir, beh: beh, ctx: ctx,
		running: map[string]*clusterAgent{}, lastSeen: map[string][]workv1.ManifestWork{},
	}
}

// startCluster starts one cluster's work agent; with keepStore its store is pre-filled with the works it had when
// it was last stopped. It emits cluster-started with the number of carried-over works.
func (s *simulator) startCluster(name string, keepStore bool) error {
	if name == "" {
		return fmt.Errorf("cluster name is required")
	}
	s.mu.Lock()
	if _, ok := s.running[name]; ok {
		s.mu.Unlock()
		return fmt.Errorf("cluster %s is already running", name)
	}
	var seed []workv1.ManifestWork
	if keepStore {
		seed = s.lastSeen[name]
	}
	s.mu.Unlock()

	path, err := s.conn.writeClusterConfig(s.cfgDir, name)
	if err != nil {
		return err
	}
	start := time.Now()
	agent, err := startClusterAgent(s.ctx, name, path, seed, s.out, s.beh)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.running[name] = agent
	s.mu.Unlock()
	s.out.emit("cluster-started", fields{
		"cluster": name, "seeded": len(seed), "clientID": name + "-work-agent",
		"ms": time.Since(start).Milliseconds(),
	})
	return nil
}

// stopCluster remembers the cluster's store contents, then cancels it and closes its connection.
func (s *simulator) stopCluster(name string) (int, error) {
	s.mu.Lock()
	agent, ok := s.running[name]
	if ok {
		delete(s.running, name)
	}
	s.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("cluster %s is not running", name)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	items, err := agent.snapshot(ctx)
	cancel()
	if err != nil {
		s.out.error(name, "snapshot store before stop", err)
	}
	agent.stop()
	s.mu.Lock()
	s.lastSeen[name] = items
	s.mu.Unlock()
	s.out.emit("cluster-stopped", fields{"cluster": name, "works": len(items)})
	return len(items), nil
}

// stopAll stops every running cluster concurrently.
func (s *simulator) stopAll() {
	var wg sync.WaitGroup
	for _, name := range s.clusterNames() {
		wg.Add(1)
		go func(n string) {
			defer wg.Done()
			_, _ = s.stopCluster(n)
		}(name)
	}
	wg.Wait()
}

func (s *simulator) clusterNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.running))
	for n := range s.running {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *simulator) agent(name string) (*clusterAgent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.running[name]
	if !ok {
		return nil, fmt.Errorf("cluster %s is not running", name)
	}
	return a, nil
}
