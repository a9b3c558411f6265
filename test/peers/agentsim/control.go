package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/util/retry"

	workv1 "open-cluster-management.io/api/work/v1"
)

// command is one JSON line read from stdin.
type command struct {
	ID         any              `json:"id"`
	Cmd        string           `json:"cmd"`
	Cluster    string           `json:"cluster"`
	UID        string           `json:"uid"`
	KeepStore  bool             `json:"keepStore"`
	Conditions []conditionInput `json:"conditions"`
}

// maxCommandLine bounds one stdin line (a publish-status command with many conditions stays far below it).
const maxCommandLine = 1 << 20

// readCommands reads JSON-line commands from r and runs them one at a time, in order, answering each with a
// "reply" line. It returns when r reaches EOF or a quit command arrives; the bool is true for quit.
func readCommands(r io.Reader, sim *simulator, out *emitter) (quit bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxCommandLine)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var cmd command
		if err := json.Unmarshal(line, &cmd); err != nil {
			out.emit("reply", fields{"id": nil, "ok": false, "error": "invalid command JSON: " + err.Error()})
			continue
		}
		if cmd.Cmd == "quit" {
			out.emit("reply", fields{"id": cmd.ID, "cmd": cmd.Cmd, "ok": true})
			return true
		}
		reply := runCommand(sim, cmd)
		reply["id"] = cmd.ID
		reply["cmd"] = cmd.Cmd
		if cmd.Cluster != "" {
			reply["cluster"] = cmd.Cluster
		}
		out.emit("reply", reply)
	}
	if err := sc.Err(); err != nil {
		out.error("", "read stdin", err)
	}
	return false
}

func failed(err error) fields {
	return fields{"ok": false, "error": err.Error()}
}

// runCommand executes one command and returns the reply fields (without id).
func runCommand(sim *simulator, cmd command) fields {
	switch cmd.Cmd {
	case "ping":
		return fields{"ok": true}
	case "clusters":
		return fields{"ok": true, "clusters": sim.clusterNames()}
	case "list":
		a, err := sim.agent(cmd.Cluster)
		if err != nil {
			return failed(err)
		}
		ctx, cancel := context.WithTimeout(sim.ctx, 10*time.Second)
		defer cancel()
		items, err := a.snapshot(ctx)
		if err != nil {
			return failed(err)
		}
		works := make([]fields, 0, len(items))
		for i := range items {
			w := &items[i]
			works = append(works, fields{
				"name": w.Name, "uid": string(w.UID), "generation": w.Generation,
				"resourceVersion": w.ResourceVersion, "deleting": !w.DeletionTimestamp.IsZero(),
				"finalizers": w.Finalizers, "conditions": conditionSummary(w.Status.Conditions),
			})
		}
		return fields{"ok": true, "works": works}
	case "stop-cluster":
		n, err := sim.stopCluster(cmd.Cluster)
		if err != nil {
			return failed(err)
		}
		return fields{"ok": true, "works": n}
	case "start-cluster":
		if err := sim.startCluster(cmd.Cluster, cmd.KeepStore); err != nil {
			return failed(err)
		}
		return fields{"ok": true}
	case "publish-status":
		return publishStatusCommand(sim, cmd)
	case "":
		return failed(fmt.Errorf("missing \"cmd\""))
	default:
		return failed(fmt.Errorf("unknown cmd %q (known: ping, clusters, list, stop-cluster, start-cluster, "+
			"publish-status, quit)", cmd.Cmd))
	}
}

// publishStatusCommand sets the given conditions on a cached work and patches its status subresource.
func publishStatusCommand(sim *simulator, cmd command) fields {
	a, err := sim.agent(cmd.Cluster)
	if err != nil {
		return failed(err)
	}
	if cmd.UID == "" {
		return failed(fmt.Errorf("publish-status needs \"uid\""))
	}
	if len(cmd.Conditions) == 0 {
		return failed(fmt.Errorf("publish-status needs at least one condition"))
	}
	ctx, cancel := context.WithTimeout(sim.ctx, sim.beh.opTimeout)
	defer cancel()
	var w *workv1.ManifestWork
	// The agent's own reconciler may patch the same work concurrently; like any kube client, re-read and retry on
	// a resourceVersion conflict (client-go's default: 5 tries, 10 ms apart, growing).
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		if w, err = a.findByUID(ctx, cmd.UID); err != nil {
			return err
		}
		status, err := withConditions(w, cmd.Conditions)
		if err != nil {
			return err
		}
		return a.publishStatus(ctx, w, status, "command")
	})
	if err != nil {
		return failed(err)
	}
	return fields{"ok": true, "name": w.Name, "generation": w.Generation}
}
