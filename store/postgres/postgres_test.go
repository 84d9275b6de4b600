package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/sandbox/sandboxtest"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/storetest"
	"github.com/mailguard/mailguard/thread"
	"github.com/mailguard/mailguard/thread/threadtest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, Options{}) })
}

// TestConformanceSmallChunks runs the suite again with 7-byte chunks, so
// that every message spans several chunks: COPY on the way in, the
// temporary file on the way out.
func TestConformanceSmallChunks(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, Options{chunk: 7}) })
}

func TestSandboxStore(t *testing.T) {
	sandboxtest.TestStore(t, func(t *testing.T) sandbox.Store { return openTest(t, Options{}).Sandbox() })
}

func TestThreadStore(t *testing.T) {
	threadtest.Run(t, func(t *testing.T) thread.Store { return openTest(t, Options{}).Thread() })
}

var ctx = context.Background()

// patterned is a reader of n bytes that are not all alike (so a wrong
// chunk order shows) without holding them in memory.
type patterned struct{ off, n int64 }

func (p *patterned) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := min(int64(len(b)), p.n-p.off)
	for i := range k {
		x := p.off + i
		b[i] = byte(x ^ x>>8 ^ x>>16)
	}
	p.off += k
	return int(k), nil
}

// TestLargeMessage: a 20 MB message streams in and out in bounded memory
// and comes back byte for byte, random access included.
func TestLargeMessage(t *testing.T) {
	s := openTest(t, Options{})
	const size = 20 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := s.Accept(ctx, &store.Message{ID: "big1"}, &patterned{n: size})
	runtime.ReadMemStats(&after)
	if err != nil || n != size {
		t.Fatalf("Accept = %d, %v", n, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("Accept of %d MB allocated %d MB: not streamed", size>>20, alloc>>20)
	}
	f, err := s.Open(ctx, "big1")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*os.File); !ok {
		t.Errorf("a large message is returned as %T, want a temporary file", f)
	}
	hw, hr := sha256.New(), sha256.New()
	io.Copy(hw, &patterned{n: size})
	if m, err := io.Copy(hr, f); err != nil || m != size {
		t.Fatalf("read back %d bytes, %v", m, err)
	}
	if !bytes.Equal(hw.Sum(nil), hr.Sum(nil)) {
		t.Error("content differs")
	}
	ra := f.(io.ReaderAt)
	p := make([]byte, 10)
	off := int64(defaultChunk*3 - 5)
	if _, err := ra.ReadAt(p, off); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 10)
	(&patterned{off: off, n: off + 10}).Read(want)
	if !bytes.Equal(p, want) {
		t.Errorf("ReadAt across a chunk boundary = %x, want %x", p, want)
	}
	// A small message stays in memory, still with random access.
	storetest.Accept(t, s, "small1", "Subject: s\r\n\r\nx\r\n")
	g, err := s.Open(ctx, "small1")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, ok := g.(io.ReaderAt); !ok {
		t.Errorf("%T is not an io.ReaderAt", g)
	}
}

// TestEmptyMessage: zero bytes are a message with content, not a message
// whose bytes are missing.
func TestEmptyMessage(t *testing.T) {
	s := openTest(t, Options{})
	storetest.Accept(t, s, "empty1", "")
	f, err := s.Open(ctx, "empty1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if len(b) != 0 {
		t.Errorf("content %q", b)
	}
	if rec, err := s.Recover(ctx); err != nil || len(rec.MissingSpool) != 0 {
		t.Errorf("Recover = %+v, %v", rec, err)
	}
}

// TestRecoverMissingBytes: a row in a live state whose bytes are gone
// (restored from an incomplete backup) becomes error; finished ones stay.
func TestRecoverMissingBytes(t *testing.T) {
	s := openTest(t, Options{})
	storetest.Accept(t, s, "k1", "kept", "u@corp.example")
	storetest.Accept(t, s, "k2", "lost", "u@corp.example")
	storetest.Accept(t, s, "k3", "finished", "u@corp.example")
	if err := s.Decide(ctx, "k3", nil, store.Decided{State: store.Rejected}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM spool WHERE msg_id IN ('k2', 'k3')`); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.Recovery{MissingSpool: []string{"k2"}}, rec); diff != "" {
		t.Errorf("Recover (-want +got):\n%s", diff)
	}
	for id, want := range map[string]store.State{"k1": store.Received, "k2": store.Error, "k3": store.Rejected} {
		if m, _ := s.Get(ctx, id); m.State != want {
			t.Errorf("%s is %s, want %s", id, m.State, want)
		}
	}
	if _, err := s.Open(ctx, "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Open(k2) = %v, want ErrNotFound", err)
	}
	if rec, _ := s.Recover(ctx); len(rec.MissingSpool) != 0 {
		t.Errorf("second Recover = %+v", rec)
	}
}

// TestHostileText: NUL bytes and invalid UTF-8, which PostgreSQL text
// refuses, are stored (escaped) instead of failing the message, and the
// filters still find them.
func TestHostileText(t *testing.T) {
	s := openTest(t, Options{})
	bad := "ev\x00il\xff\xfe"
	m := &store.Message{ID: "h1", Direction: "inbound", ClientIP: "192.0.2.1", HELO: "helo" + bad,
		MailFrom: "a" + bad + "@x.example", Rcpts: []string{"u@corp.example", "v" + bad + "@corp.example"}}
	if _, err := s.Accept(ctx, m, strings.NewReader("body\x00\xff")); err != nil {
		t.Fatal(err)
	}
	err := s.Decide(ctx, "h1", nil, store.Decided{State: store.Quarantined, Subject: "件名" + bad, From: bad,
		MessageID: bad, Reasons: []string{"malware_yara"}, Decision: []byte(`{"x":"\u0000"}`),
		Files: []store.FileRef{{SHA256: strings.Repeat("ab", 32), Path: "a/" + bad, Name: bad, Type: bad}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	const esc = `ev\x00il\xff\xfe`
	if got.Subject != "件名"+esc || got.HELO != "helo"+esc || got.Rcpts[0] != "u@corp.example" ||
		got.Rcpts[1] != "v"+esc+"@corp.example" || got.Files[0].Name != esc || string(got.Decision) != `{"x":"\u0000"}` {
		t.Errorf("hostile text round trip: %+v", got)
	}
	f, _ := s.Open(ctx, "h1")
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "body\x00\xff" {
		t.Errorf("bytes changed: %q", b)
	}
	for _, flt := range []store.Filter{{From: bad}, {Rcpt: "V" + bad}, {IDs: []string{"h1", bad}}} {
		if ids, err := s.MessageIDs(ctx, flt); err != nil || len(ids) != 1 {
			t.Errorf("MessageIDs(%+v) = %v, %v", flt, ids, err)
		}
	}
	if _, err := s.Get(ctx, bad); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(hostile id) = %v", err)
	}
	if err := s.AddAudit(ctx, store.Audit{MsgID: "h1", Actor: bad, Action: "export", Note: bad}); err != nil {
		t.Error(err)
	}
}

func TestLiteralSubstring(t *testing.T) {
	s := openTest(t, Options{})
	storetest.Accept(t, s, "p1", "x", "a_b@corp.example")
	storetest.Accept(t, s, "p2", "x", "axb@corp.example")
	if ids, _ := s.MessageIDs(ctx, store.Filter{Rcpt: "A_B"}); !cmp.Equal(ids, []string{"p1"}) {
		t.Errorf("rcpt filter a_b = %v: _ must not be a wildcard", ids)
	}
	if ids, _ := s.MessageIDs(ctx, store.Filter{Rcpt: "%"}); len(ids) != 0 {
		t.Errorf("rcpt filter %% = %v", ids)
	}
}

func TestInvalidIDs(t *testing.T) {
	s := openTest(t, Options{})
	for _, id := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("x", 65), "a\x00b"} {
		if _, err := s.Accept(ctx, &store.Message{ID: id}, strings.NewReader("x")); err == nil {
			t.Errorf("Accept(%q) succeeded", id)
		}
		if _, err := s.Open(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Open(%q) = %v", id, err)
		}
	}
}

// TestDeliveredInAnAttempt: a recipient that accepted the message in an
// earlier attempt makes it delivered, even if the last attempt (for the
// others) failed for good.
func TestDeliveredInAnAttempt(t *testing.T) {
	s := openTest(t, Options{})
	storetest.Accept(t, s, "a1", "x", "ok@corp.example", "gone@corp.example")
	err := s.Decide(ctx, "a1", nil, store.Decided{State: store.Queued,
		Deliveries: []store.Delivery{{Route: "inbound", Rcpts: []string{"ok@corp.example", "gone@corp.example"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := s.Claim(ctx, "w", 60e9, 1)
	if len(ds) != 1 {
		t.Fatalf("claim = %v", ds)
	}
	if err := s.DeliveryRetry(ctx, ds[0].ID, s.now().Add(-1), []string{"gone@corp.example"},
		[]store.RcptResult{{Rcpt: "ok@corp.example", Code: 250}, {Rcpt: "gone@corp.example", Code: 451}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	ds, _ = s.Claim(ctx, "w", 60e9, 1)
	if len(ds) != 1 || !cmp.Equal(ds[0].Rcpts, []string{"gone@corp.example"}) {
		t.Fatalf("second claim = %+v", ds)
	}
	if err := s.DeliveryDone(ctx, ds[0].ID, []store.RcptResult{{Rcpt: "gone@corp.example", Code: 550, Perm: true}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Get(ctx, "a1"); m.State != store.Delivered {
		t.Errorf("state %s, want delivered", m.State)
	}
	if err := s.DeliveryDone(ctx, 999999, nil, nil, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeliveryDone(unknown) = %v", err)
	}
}

func TestBlob(t *testing.T) {
	s := openTest(t, Options{chunk: 3})
	sum := "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // "hello"
	if err := s.PutBlob(ctx, sum, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob(ctx, sum, strings.NewReader("hello")); err != nil {
		t.Fatalf("second put: %v", err)
	}
	if err := s.PutBlob(ctx, strings.Repeat("0", 64), strings.NewReader("hello")); err == nil {
		t.Error("content with the wrong hash was stored")
	}
	if _, err := s.OpenBlob(ctx, strings.Repeat("0", 64)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused blob can be opened: %v", err)
	}
	f, err := s.OpenBlob(ctx, sum)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "hello" {
		t.Errorf("blob = %q", b)
	}
	if _, err := s.OpenBlob(ctx, "../x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OpenBlob(../x) = %v", err)
	}
}

// TestBlobConcurrentPut: nodes storing the same content at once keep it
// once, and nobody fails.
func TestBlobConcurrentPut(t *testing.T) {
	u := freshSchema(t)
	a, b := openURL(t, u, Options{chunk: 1000}), openURL(t, u, Options{chunk: 1000})
	content := strings.Repeat("attachment ", 5000)
	h := sha256.Sum256([]byte(content))
	sum := hex.EncodeToString(h[:])
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			if err := s.PutBlob(ctx, sum, strings.NewReader(content)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n, chunks int
	a.pool.QueryRow(ctx, `SELECT count(*), (SELECT count(*) FROM blob_chunks) FROM blobs`).Scan(&n, &chunks)
	if n != 1 || chunks != (len(content)+999)/1000 {
		t.Errorf("%d blobs with %d chunks", n, chunks)
	}
}

func TestMigrationsOnce(t *testing.T) {
	u := freshSchema(t)
	s := openURL(t, u, Options{})
	openURL(t, u, Options{}) // a second open applies nothing
	names, err := s.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"0001_core", "0002_sandbox", "0003_thread"}, names); diff != "" {
		t.Errorf("migrations (-want +got):\n%s", diff)
	}
}

// TestSynchronousCommit: a session whose default has synchronous_commit
// off gets it back on; a URL that asks for off is refused.
func TestSynchronousCommit(t *testing.T) {
	u := freshSchema(t)
	if _, err := Open(ctx, withParam(t, u, "synchronous_commit", "off"), Options{}); err == nil {
		t.Error("a URL with synchronous_commit=off was accepted")
	}
	s := openURL(t, u+"&options=-c%20synchronous_commit%3Doff", Options{})
	var v string
	if err := s.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&v); err != nil || v != "on" {
		t.Errorf("synchronous_commit = %q, %v; want on", v, err)
	}
}

func TestPoolSizeFromURL(t *testing.T) {
	s := openURL(t, withParam(t, freshSchema(t), "pool_max_conns", "3"), Options{})
	if got := s.pool.Config().MaxConns; got != 3 {
		t.Errorf("MaxConns = %d, want 3", got)
	}
}

func TestOpenErrors(t *testing.T) {
	u := testURL(t)
	if _, err := Open(ctx, "postgres://%zz", Options{}); err == nil {
		t.Error("a malformed URL was accepted")
	}
	// A search_path naming no existing schema leaves nowhere to create
	// the tables: a clear error, not tables in some other schema.
	if _, err := Open(ctx, withParam(t, u, "search_path", "mgtest_does_not_exist"), Options{}); err == nil ||
		!strings.Contains(err.Error(), "search_path") {
		t.Errorf("Open with a missing schema: %v", err)
	}
}

// TestFileIndex: the attachment index keeps the order of the tree, is
// replaced by a second decision, and finds messages by hash.
func TestFileIndex(t *testing.T) {
	s := openTest(t, Options{})
	storetest.Accept(t, s, "fi1", "x", "u@corp.example")
	var files []store.FileRef
	for i := range 60 {
		files = append(files, store.FileRef{SHA256: fmt.Sprintf("%064X", 60-i), Path: fmt.Sprintf("a.zip/%02d.txt", i),
			Name: fmt.Sprintf("%02d.txt", i), Type: "text/plain", Size: int64(i)})
	}
	if err := s.Decide(ctx, "fi1", nil, store.Decided{State: store.Held, Files: files}); err != nil {
		t.Fatal(err)
	}
	m, err := s.Get(ctx, "fi1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		files[i].SHA256 = strings.ToLower(files[i].SHA256)
	}
	if diff := cmp.Diff(files, m.Files); diff != "" {
		t.Errorf("file index (-want +got):\n%s", diff)
	}
	if ids, _ := s.MessageIDs(ctx, store.Filter{SHA256: fmt.Sprintf("%064x", 7)}); !cmp.Equal(ids, []string{"fi1"}) {
		t.Errorf("by hash: %v", ids)
	}
	if err := s.Decide(ctx, "fi1", nil, store.Decided{State: store.Quarantined, Files: files[:1]}); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Get(ctx, "fi1"); len(m.Files) != 1 {
		t.Errorf("a second decision left %d files", len(m.Files))
	}
}

func TestSessionDefaults(t *testing.T) {
	u := freshSchema(t)
	s := openURL(t, u, Options{})
	var app, idle string
	s.pool.QueryRow(ctx, `SELECT current_setting('application_name'), current_setting('idle_in_transaction_session_timeout')`).Scan(&app, &idle)
	if app != "mailguard" || idle != "1min" {
		t.Errorf("application_name %q, idle_in_transaction_session_timeout %q", app, idle)
	}
	s2 := openURL(t, withParam(t, u, "application_name", "mx1"), Options{})
	s2.pool.QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&app)
	if app != "mx1" {
		t.Errorf("the URL's application_name was replaced: %q", app)
	}
}
