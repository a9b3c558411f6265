package main

import (
	"net"
	"sync"
	"sync/atomic"
)

// countingListener reports every accepted TCP connection and its closing, so tests can check how many HTTP/2
// connections the agents open and that stopping a cluster closes its connection.
type countingListener struct {
	net.Listener
	out *emitter
	n   atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	id := l.n.Add(1)
	l.out.emit("connection-opened", fields{"conn": id, "remote": c.RemoteAddr().String()})
	return &countedConn{Conn: c, id: id, out: l.out}, nil
}

type countedConn struct {
	net.Conn
	id   int64
	out  *emitter
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.out.emit("connection-closed", fields{"conn": c.id, "remote": c.RemoteAddr().String()})
	})
	return c.Conn.Close()
}
