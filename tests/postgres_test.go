package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Several nodes: two `mailguard serve` processes share one PostgreSQL
// database (store { postgres = "…" }). MAILGUARD_TEST_POSTGRES is the URL
// of a server where the tests may create databases; scripts/test.sh starts
// a private one. Without it these tests skip.

// pgDatabase creates an empty database for one test, dropped when the
// test ends (after its gateways stopped), and returns its URL.
func pgDatabase(t *testing.T) string {
	t.Helper()
	base := os.Getenv("MAILGUARD_TEST_POSTGRES")
	if base == "" {
		t.Skip("MAILGUARD_TEST_POSTGRES is not set")
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("MAILGUARD_TEST_POSTGRES: %v", err)
	}
	defer c.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	name := "mge2e_" + hex.EncodeToString(b[:])
	if _, err := c.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// startNode starts one node of a cluster: its own directory and listener,
// the shared database, the quarantine test rules.
func startNode(t *testing.T, name, dbURL, relay string) *gateway {
	t.Helper()
	dir := t.TempDir()
	addr := freePort(t)
	policy := fmt.Sprintf(`gateway {
  hostname          = "%s.corp.example"
  node              = %[1]q
  listen            = [%q]
  local_domains     = ["corp.example"]
  internal_networks = ["10.0.0.0/8"]
  trusted_proxies   = ["127.0.0.1/32"]
}
store {
  path     = "./var"
  postgres = %q
}
delivery {
  inbound_relay = %q
  retry_min     = "1s"
  retry_max     = "2s"
}
log {
  level  = "debug"
  events = "./var/events.jsonl"
}
auth { enabled = false }
%s`, name, addr, dbURL, relay, quarantineRules)
	path := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, dir: dir, addr: addr, policy: path}
	g.start()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, tail(g.log.String(), 60))
		}
	})
	return g
}

// copiesOf returns the messages the sink received for a mailguard ID.
func copiesOf(s *sink, id string) []string {
	var out []string
	for _, m := range s.messages() {
		if strings.Contains(m, "X-Mailguard-Id: "+id) {
			out = append(out, m)
		}
	}
	return out
}

// waitCopies waits until the sink has a copy of each ID, then a little
// longer (a duplicate would come within the queue's retry), and checks
// that each came exactly once.
func waitCopies(t *testing.T, s *sink, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for len(copiesOf(s, id)) == 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(3 * time.Second)
	for _, id := range ids {
		if n := len(copiesOf(s, id)); n != 1 {
			t.Errorf("%s: %d copies downstream, want 1", id, n)
		}
	}
}

// TestPostgresTwoNodes: two nodes share held mail, quarantine and the
// delivery queue through one database. Mail sent to node A is delivered;
// a message held on A is released with node B's policy and delivered
// once; a message quarantined on A is listed, shown and exported from B.
func TestPostgresTwoNodes(t *testing.T) {
	need(t, "smtp-sink")
	db := pgDatabase(t)
	s := startSink(t, "")
	a := startNode(t, "node-a", db, s.addr)
	b := startNode(t, "node-b", db, s.addr)

	sent, _ := sendExact(t, a.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: hello\n\nbody\n"))
	if sent == "" {
		t.Fatal("node a refused a clean message")
	}
	waitCopies(t, s, sent)
	b.qWaitState(sent, "delivered", 10*time.Second)

	held, _ := sendExact(t, a.addr, "alice@partner.example", []string{"bob@corp.example"}, crlf("Subject: HOLD ME\n\nheld body\n"))
	b.qWaitState(held, "held", 10*time.Second)
	out, errOut, code := b.mgIn("", "quarantine", "release", held, "--note", "released from node b")
	if code != 0 || !strings.Contains(out, "released "+held) {
		t.Fatalf("release on node b: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := a.mgIn("", "quarantine", "release", held); code != 1 || !strings.Contains(errOut, "not held or quarantined") {
		t.Errorf("second release, on node a: exit %d, %s", code, errOut)
	}
	waitCopies(t, s, held)
	if got := copiesOf(s, held); len(got) == 1 && !strings.Contains(got[0], "X-Mailguard-Released: by ") {
		t.Errorf("released copy lacks X-Mailguard-Released:\n%s", got[0])
	}
	a.qWaitState(held, "delivered", 10*time.Second)

	body := crlf("From: mallory@evil.example\nSubject: QUARANTINE invoice\n\nquarantined body\n")
	q, _ := sendExact(t, a.addr, "mallory@evil.example", []string{"bob@corp.example"}, body)
	b.qWaitState(q, "quarantined", 10*time.Second)
	if it := b.qList()[q]; it.Subject != "QUARANTINE invoice" {
		t.Errorf("listed on node b: %+v", it)
	}
	if show, err := b.mg("quarantine", "show", q); err != nil || !strings.Contains(show, "QUARANTINE invoice") {
		t.Errorf("show on node b: %v\n%s", err, show)
	}
	if exp, err := b.mg("quarantine", "export", q); err != nil || exp != body {
		t.Errorf("export on node b: %v\n%q\nwant %q", err, exp, body)
	}
	if n := len(copiesOf(s, q)); n != 0 {
		t.Errorf("a quarantined message was delivered %d times", n)
	}
}

// TestPostgresTwoNodesLoad: mail sent to both nodes at once is delivered
// exactly once each, whichever node's workers deliver it.
func TestPostgresTwoNodesLoad(t *testing.T) {
	need(t, "smtp-sink")
	db := pgDatabase(t)
	s := startSink(t, "")
	nodes := []*gateway{startNode(t, "node-a", db, s.addr), startNode(t, "node-b", db, s.addr)}
	const n = 30
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], _ = sendExact(t, nodes[i%2].addr, "alice@partner.example", []string{"bob@corp.example"},
				crlf(fmt.Sprintf("Subject: load %d\n\nbody %d\n", i, i)))
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if id == "" {
			t.Fatalf("message %d was refused", i)
		}
	}
	waitCopies(t, s, ids...)
	all := nodes[1].qList("--state", "all")
	for _, id := range ids {
		if all[id].State != "delivered" {
			t.Errorf("%s is %q, want delivered", id, all[id].State)
		}
	}
}

// TestPostgresPolicy: check refuses a malformed store.postgres URL at its
// position, accepts a good one without connecting, and serve fails clearly
// when the database is unreachable; no message shows the password.
func TestPostgresPolicy(t *testing.T) {
	dir := t.TempDir()
	write := func(u string) string {
		p := filepath.Join(dir, "policy.hcl")
		text := fmt.Sprintf("gateway {\n  listen = [%q]\n  local_domains = [\"corp.example\"]\n}\nstore {\n  postgres = %q\n}\nauth { enabled = false }\n",
			freePort(t), u)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) (string, int) {
		cmd := exec.Command(mailguard, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "s3cret") {
			t.Errorf("mailguard %v shows the password:\n%s", args, out)
		}
		return string(out), code
	}
	for _, bad := range []string{"postgres://u:s3cret@db.example:%zz/mail", "mysql://u:s3cret@db/mail", "postgres:s3cret"} {
		out, code := run("check", "--config", write(bad))
		if code != 1 || !strings.Contains(out, "policy.hcl:6:") || !strings.Contains(out, "invalid postgres URL") {
			t.Errorf("check with %q: exit %d\n%s", bad, code, out)
		}
	}
	// Port 1 on loopback: nothing listens, the connection is refused at once.
	good := write("postgres://mailguard:s3cret@127.0.0.1:1/mail?sslmode=disable&pool_max_conns=8")
	if out, code := run("check", "--config", good); code != 0 {
		t.Errorf("check with a good URL: exit %d\n%s", code, out)
	}
	out, code := run("serve", "--config", good)
	if code == 0 || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("serve with an unreachable database: exit %d\n%s", code, out)
	}
}
