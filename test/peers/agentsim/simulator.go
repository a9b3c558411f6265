package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"
)

// clusterRuntime is what runs for one simulated cluster: a work agent, a registration agent, or both (--mode).
type clusterRuntime struct {
	work *clusterAgent
	reg  *registrationAgent
}

// simulator owns the simulated clusters: which are running, and what each stopped cluster had in its work store.
type simulator struct {
	out    *emitter
	conn   connectionFlags
	cfgDir string
	mode   string
	beh    behaviour
	regBeh registrationBehaviour
	ctx    context.Context

	mu       sync.Mutex
	running  map[string]*clusterRuntime
	lastSeen map[string][]workv1.ManifestWork // work store contents at the last stop-cluster
}

func newSimulator(ctx context.Context, out *emitter, conn connectionFlags, cfgDir, mode string, beh behaviour,
	regBeh registrationBehaviour) *simulator {
	return &simulator{
		out: out, conn: conn, cfgDir: cfgDir, mode: mode, beh: beh, regBeh: regBeh, ctx: ctx,
		running: map[string]*clusterRuntime{}, lastSeen: map[string][]workv1.ManifestWork{},
	}
}

func (s *simulator) runsWork() bool         { return s.mode == "work" || s.mode == "both" }
func (s *simulator) runsRegistration() bool { return s.mode == "registration" || s.mode == "both" }

// startCluster starts one cluster's agents; with keepStore the work store is pre-filled with the works it had
// when it was last stopped. It emits cluster-started with the number of carried-over works.
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
	rt := &clusterRuntime{}
	if s.runsRegistration() {
		if rt.reg, err = startRegistrationAgent(s.ctx, name, path, s.out, s.regBeh); err != nil {
			return err
		}
	}
	if s.runsWork() {
		if rt.work, err = startClusterAgent(s.ctx, name, path, seed, s.out, s.beh); err != nil {
			if rt.reg != nil {
				rt.reg.stop()
			}
			return err
		}
	}
	s.mu.Lock()
	s.running[name] = rt
	s.mu.Unlock()
	f := fields{"cluster": name, "seeded": len(seed), "mode": s.mode, "ms": time.Since(start).Milliseconds()}
	if rt.work != nil {
		f["clientID"] = name + "-work-agent"
	}
	s.out.emit("cluster-started", f)
	return nil
}

// stopCluster remembers the work store's contents, then cancels the cluster's agents and closes their connections.
func (s *simulator) stopCluster(name string) (int, error) {
	s.mu.Lock()
	rt, ok := s.running[name]
	if ok {
		delete(s.running, name)
	}
	s.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("cluster %s is not running", name)
	}
	var items []workv1.ManifestWork
	if rt.work != nil {
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
		var err error
		items, err = rt.work.snapshot(ctx)
		cancel()
		if err != nil {
			s.out.error(name, "snapshot store before stop", err)
		}
		rt.work.stop()
	}
	if rt.reg != nil {
		rt.reg.stop()
	}
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

// agent returns the work agent of a running cluster.
func (s *simulator) agent(name string) (*clusterAgent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.running[name]
	if !ok {
		return nil, fmt.Errorf("cluster %s is not running", name)
	}
	if rt.work == nil {
		return nil, fmt.Errorf("cluster %s runs no work agent (--mode %s)", name, s.mode)
	}
	return rt.work, nil
}
