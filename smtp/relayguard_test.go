package smtp

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// countConn counts the writes that reach the connection.
type countConn struct {
	net.Conn
	writes int
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestGuardConnGathersWrites: what is written reaches the peer in one
// write when the connection is next read, however many writes made it.
func TestGuardConnGathersWrites(t *testing.T) {
	client, server := tcpPair(t)
	cc := &countConn{Conn: client}
	g := &guardConn{Conn: cc, ctx: context.Background(), timeout: 5 * time.Second}
	var want bytes.Buffer
	for i := 0; i < 5; i++ {
		line := bytes.Repeat([]byte{'a' + byte(i)}, 4000)
		want.Write(line)
		if _, err := g.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	if cc.writes != 0 {
		t.Fatalf("%d writes sent before any read", cc.writes)
	}
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, want.Len())
		_, err := io.ReadFull(server, buf)
		if err != nil {
			buf = nil
		}
		got <- buf
		server.Write([]byte("250 ok\r\n"))
	}()
	reply := make([]byte, 8)
	if _, err := io.ReadFull(g, reply); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %d bytes, want the %d written", len(b), want.Len())
	}
	if cc.writes != 1 {
		t.Fatalf("%d writes, want 1", cc.writes)
	}
	if string(reply) != "250 ok\r\n" {
		t.Fatalf("reply %q", reply)
	}
}

// TestGuardConnBigWriteAndClose: a write past the buffer goes out whole,
// in order after what was gathered, and Close sends what is left.
func TestGuardConnBigWriteAndClose(t *testing.T) {
	client, server := tcpPair(t)
	g := &guardConn{Conn: client, ctx: context.Background(), timeout: 5 * time.Second}
	var want bytes.Buffer
	for _, p := range [][]byte{[]byte("DATA\r\n"), bytes.Repeat([]byte("x"), 3*relayWriteBuf), []byte("QUIT\r\n")} {
		want.Write(p)
		if _, err := g.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %d bytes, want %d in order", len(b), want.Len())
	}
}

// TestGuardConnCancelled: after the delivery's ctx ends nothing more is
// sent, gathered or not.
func TestGuardConnCancelled(t *testing.T) {
	client, _ := tcpPair(t)
	cc := &countConn{Conn: client}
	ctx, cancel := context.WithCancel(context.Background())
	g := &guardConn{Conn: cc, ctx: ctx, timeout: 5 * time.Second}
	if _, err := g.Write([]byte("RSET\r\n")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := g.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after cancel succeeded")
	}
	if _, err := g.Write([]byte("x")); err == nil {
		t.Fatal("write after cancel succeeded")
	}
	if cc.writes != 0 {
		t.Fatalf("%d writes after cancel", cc.writes)
	}
}
