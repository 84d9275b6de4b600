package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/sandbox/sandboxtest"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/storetest"
)

func openTemp(t *testing.T, opt Options) *DB {
	t.Helper()
	s, err := Open(t.TempDir(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Run("inline", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{}) })
	})
	t.Run("files", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{InlineMax: -1}) })
	})
	t.Run("mixed", func(t *testing.T) { // every message above 64 bytes in a file
		storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{InlineMax: 64}) })
	})
}

// faultFS fails the named step once armed.
type faultFS struct {
	osFS
	mu      sync.Mutex
	failOn  string // "create", "write", "sync", "close", "rename", "syncdir"
	syncDir int
}

var errInjected = errors.New("injected fault")

func (f *faultFS) should(step string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failOn == step
}

func (f *faultFS) Create(name string) (file, error) {
	if f.should("create") {
		return nil, errInjected
	}
	fl, err := f.osFS.Create(name)
	if err != nil {
		return nil, err
	}
	return &faultFile{file: fl, fs: f}, nil
}

func (f *faultFS) Rename(a, b string) error {
	if f.should("rename") {
		return errInjected
	}
	return f.osFS.Rename(a, b)
}

func (f *faultFS) SyncDir(d string) error {
	f.mu.Lock()
	f.syncDir++
	f.mu.Unlock()
	if f.should("syncdir") {
		return errInjected
	}
	return f.osFS.SyncDir(d)
}

type faultFile struct {
	file
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if f.fs.should("write") {
		return 0, errInjected
	}
	return f.file.Write(p)
}

func (f *faultFile) Sync() error {
	if f.fs.should("sync") {
		return errInjected
	}
	return f.file.Sync()
}

func (f *faultFile) Close() error {
	err := f.file.Close()
	if f.fs.should("close") {
		return errInjected
	}
	return err
}

// TestAcceptFaults: whichever durability step fails, Accept reports an
// error (the SMTP layer answers 451) and leaves neither a row nor a file.
func TestAcceptFaults(t *testing.T) {
	for _, step := range []string{"create", "write", "sync", "close", "rename", "syncdir"} {
		t.Run(step, func(t *testing.T) {
			ffs := &faultFS{failOn: step}
			s := openTemp(t, Options{fs: ffs, InlineMax: -1})
			_, err := s.Accept(context.Background(), &store.Message{ID: "f1"}, strings.NewReader("data"))
			if !errors.Is(err, errInjected) {
				t.Fatalf("Accept err = %v, want the injected fault", err)
			}
			if _, err := s.Get(context.Background(), "f1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("row exists after failed %s: %v", step, err)
			}
			var files []string
			filepath.WalkDir(filepath.Join(s.dir, "spool"), func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, p)
				}
				return nil
			})
			if len(files) != 0 {
				t.Errorf("files left after failed %s: %v", step, files)
			}
		})
	}
}

// TestGroupCommit: concurrent accepts share directory fsyncs and commits.
func TestGroupCommit(t *testing.T) {
	ffs := &faultFS{}
	s := openTemp(t, Options{fs: ffs, InlineMax: -1})
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Accept(context.Background(), &store.Message{ID: fmt.Sprintf("g%d", i)}, strings.NewReader("x")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ffs.syncDir >= n {
		t.Errorf("%d directory fsyncs for %d concurrent messages: no grouping", ffs.syncDir, n)
	}
	t.Logf("%d messages, %d directory fsyncs", n, ffs.syncDir)
}

// TestCrashReopen: a store abandoned without Close (a crash) reopens with
// every acknowledged message, and Recover sorts out files and rows.
func TestCrashReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s1, err := Open(dir, Options{InlineMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Accept(t, s1, "k1", "acknowledged", "u@corp.example")
	storetest.Accept(t, s1, "k2", "acknowledged", "u@corp.example")
	// A file renamed into the spool whose row never committed (crash
	// between the rename and the commit), a row whose file vanished, and a
	// stale temp file.
	orphan := s1.spoolPath("k-orphan")
	os.MkdirAll(filepath.Dir(orphan), 0o750)
	os.WriteFile(orphan, []byte("half"), 0o640)
	os.Remove(s1.spoolPath("k2"))
	// No Close: the process "died". Open a second handle, as a restart does.
	s2, err := Open(dir, Options{InlineMax: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rec, err := s2.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Orphans) != 1 || rec.Orphans[0] != "k-orphan" {
		t.Errorf("orphans = %v", rec.Orphans)
	}
	if _, err := os.Stat(filepath.Join(dir, "spool", "orphan", "k-orphan")); err != nil {
		t.Errorf("orphan not kept as evidence: %v", err)
	}
	if len(rec.MissingSpool) != 1 || rec.MissingSpool[0] != "k2" {
		t.Errorf("missing spool = %v", rec.MissingSpool)
	}
	m, err := s2.Get(ctx, "k1")
	if err != nil || m.State != store.Received {
		t.Errorf("k1 after crash = %+v, %v", m, err)
	}
	if m, _ := s2.Get(ctx, "k2"); m.State != store.Error {
		t.Errorf("k2 state = %s, want error", m.State)
	}
}

func TestInvalidIDs(t *testing.T) {
	s := openTemp(t, Options{})
	for _, id := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("x", 65)} {
		if _, err := s.Accept(context.Background(), &store.Message{ID: id}, strings.NewReader("x")); err == nil {
			t.Errorf("Accept(%q) succeeded", id)
		}
	}
}

func TestSandboxStore(t *testing.T) {
	sandboxtest.TestStore(t, func(t *testing.T) sandbox.Store { return openTemp(t, Options{}).Sandbox() })
}

func TestBlob(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
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

// TestInlineAccept: a small message is kept in the database (no spool
// file, no directory fsync), survives a reopen without Close, and reads
// back with random access like a file; a large one goes to a file.
func TestInlineAccept(t *testing.T) {
	dir := t.TempDir()
	ffs := &faultFS{}
	s1, err := Open(dir, Options{fs: ffs, InlineMax: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	small := "Subject: small\r\n\r\nbody\r\n"
	large := "Subject: large\r\n\r\n" + strings.Repeat("x", 2000) + "\r\n"
	storetest.Accept(t, s1, "inline1", small, "u@corp.example")
	if ffs.syncDir != 0 {
		t.Errorf("an inline message cost %d directory fsyncs", ffs.syncDir)
	}
	if _, err := os.Stat(s1.spoolPath("inline1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an inline message has a spool file: %v", err)
	}
	storetest.Accept(t, s1, "large1", large, "u@corp.example")
	if _, err := os.Stat(s1.spoolPath("large1")); err != nil {
		t.Errorf("a large message has no spool file: %v", err)
	}
	// Crash: no Close. The reopened store has both.
	s2, err := Open(dir, Options{InlineMax: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rec, err := s2.Recover(ctx)
	if err != nil || len(rec.MissingSpool) != 0 || len(rec.Orphans) != 0 {
		t.Errorf("Recover = %+v, %v", rec, err)
	}
	for id, want := range map[string]string{"inline1": small, "large1": large} {
		f, err := s2.Open(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		ra, ok := f.(io.ReaderAt)
		if !ok {
			t.Fatalf("%s: not random access", id)
		}
		b := make([]byte, 7)
		if _, err := ra.ReadAt(b, 9); err != nil || string(b) != want[9:16] {
			t.Errorf("%s: ReadAt = %q, %v", id, b, err)
		}
		all, _ := io.ReadAll(f)
		f.Close()
		if string(all) != want {
			t.Errorf("%s: content differs", id)
		}
	}
}

// TestMigrateInlineRowid: a store made before 0006 (spool_inline WITHOUT
// ROWID) keeps its inline messages through the migration.
func TestMigrateInlineRowid(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s1, err := Open(dir, Options{InlineMax: 1024})
	if err != nil {
		t.Fatal(err)
	}
	body := "Subject: before the upgrade\r\n\r\nbody\r\n"
	storetest.Accept(t, s1, "old1", body, "u@corp.example")
	for _, q := range []string{
		`CREATE TABLE spool_old (id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID`,
		`INSERT INTO spool_old SELECT id, data FROM spool_inline`,
		`DROP TABLE spool_inline`,
		`ALTER TABLE spool_old RENAME TO spool_inline`,
		`DELETE FROM schema_migrations WHERE name = '0006_inline_rowid'`,
	} {
		if _, err := s1.w.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s1.Close()
	s2, err := Open(dir, Options{InlineMax: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var ddl string
	if err := s2.r.QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'spool_inline'`).Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToUpper(ddl), "WITHOUT ROWID") {
		t.Errorf("spool_inline after the migration: %s", ddl)
	}
	f, err := s2.Open(ctx, "old1")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); string(got) != body {
		t.Errorf("after the migration: %q", got)
	}
}

// TestWALBounded: a reader that kept the log in use while it grew does not
// leave a big log file behind once it has finished.
func TestWALBounded(t *testing.T) {
	dir := t.TempDir()
	const max = 256 << 10
	s, err := Open(dir, Options{walMax: max, InlineMax: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	walSize := func() int64 { return walFileSize(t, dir) }
	// A read transaction pins the log while 200 messages are accepted.
	ctx := context.Background()
	rc, err := s.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var n int
	if _, err := rc.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		t.Fatal(err)
	}
	if err := rc.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	body := "Subject: wal\r\n\r\n" + strings.Repeat("0123456789abcdef", 1024) + "\r\n"
	for i := range 200 {
		storetest.Accept(t, s, fmt.Sprintf("wal%d", i), body, "u@corp.example")
	}
	if got := walSize(); got <= max {
		t.Fatalf("log %d bytes with a reader pinning it, want it to grow past %d", got, max)
	}
	if _, err := rc.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	// The reader is gone: within a second or two of commits the log is
	// restarted and cut back.
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; walSize() > max; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("log still %d bytes after the reader finished, want at most %d", walSize(), max)
		}
		storetest.Accept(t, s, fmt.Sprintf("after%d", i), "Subject: x\r\n\r\nx\r\n", "u@corp.example")
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWALBoundedBusyReaders: with a reader always in the log (overlapping
// short reads, as under load), the log still does not grow without bound.
func TestWALBoundedBusyReaders(t *testing.T) {
	dir := t.TempDir()
	const max = 256 << 10
	s, err := Open(dir, Options{walMax: max, InlineMax: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(r) * time.Millisecond)
			for ctx.Err() == nil {
				rc, err := s.r.Conn(context.Background())
				if err != nil {
					return
				}
				var n int
				rc.ExecContext(ctx, `BEGIN DEFERRED`)
				rc.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&n)
				time.Sleep(3 * time.Millisecond)
				rc.ExecContext(context.Background(), `ROLLBACK`)
				rc.Close()
			}
		}()
	}
	body := "Subject: wal\r\n\r\n" + strings.Repeat("0123456789abcdef", 1024) + "\r\n"
	var peak int64
	for i := range 1500 {
		storetest.Accept(t, s, fmt.Sprintf("wal%d", i), body, "u@corp.example")
		peak = walFileSize(t, dir)
	}
	cancel()
	wg.Wait()
	// 1,500 messages of 16 KiB write about 30 MB of log; left alone, the
	// file ends that big.
	if peak > 24*max {
		t.Errorf("log reached %d bytes under steady reads, want it kept near %d", peak, max)
	}
	t.Logf("log %d bytes at the end (bound %d)", peak, max)
}

// walFileSize is the size of the store's write-ahead log file.
func walFileSize(t *testing.T, dir string) int64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(dir, "mailguard.db-wal"))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
