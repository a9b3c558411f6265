package main

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// emitter writes one JSON object per line. Every line carries "t" (RFC3339Nano, UTC) and "event".
// It is safe for concurrent use; each line is written with a single Write call.
type emitter struct {
	mu sync.Mutex
	w  io.Writer
}

func newEmitter(w io.Writer) *emitter {
	return &emitter{w: w}
}

// fields is the payload of one output line, without "t" and "event".
type fields map[string]any

// emit writes {"t":…,"event":event,…fields}.
func (e *emitter) emit(event string, f fields) {
	line := make(map[string]any, len(f)+2)
	for k, v := range f {
		line[k] = v
	}
	line["t"] = time.Now().UTC().Format(time.RFC3339Nano)
	line["event"] = event
	data, err := json.Marshal(line)
	if err != nil {
		data, _ = json.Marshal(map[string]any{
			"t":       time.Now().UTC().Format(time.RFC3339Nano),
			"event":   "error",
			"message": "cannot encode output line for event " + event + ": " + err.Error(),
		})
	}
	data = append(data, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(data)
}

// errorf emits an "error" event for a cluster ("" when not cluster specific).
func (e *emitter) error(cluster, context string, err error) {
	f := fields{"message": err.Error(), "context": context}
	if cluster != "" {
		f["cluster"] = cluster
	}
	e.emit("error", f)
}
