package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// engineFor compiles src as one rule file and returns an engine for it.
func engineFor(t *testing.T, src string) *Engine {
	t.Helper()
	dir := writeFiles(t, map[string]string{"test.yar": src})
	e := NewEngine(mustCompile(t, dir, "test.yar"), 0)
	t.Cleanup(e.Close)
	return e
}

func TestScanBytesReportsRuleDetails(t *testing.T) {
	e := engineFor(t, `
rule demo : phishing office {
  meta:
    description = "demo rule"
    severity = "Critical"
    action = "quarantine"
    score = 7
    enabled = true
  strings:
    $one = "alpha"
    $two = "beta"
    $three = "gamma"
  condition:
    any of them
}
rule other { strings: $z = "zzzzz" condition: $z }
`)
	m, err := e.ScanBytes(context.Background(), []byte("xx alpha yy gamma"), Vars{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Match{{
		Rule: "demo", Namespace: "test", Tags: []string{"phishing", "office"},
		Meta: map[string]any{
			"description": "demo rule", "severity": "Critical", "action": "quarantine",
			"score": 7, "enabled": true,
		},
		Strings: []string{"$one", "$three"},
	}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Fatalf("matches (-want +got):\n%s", diff)
	}
	if got := m[0].Severity(); got != SeverityCritical {
		t.Errorf("Severity() = %q", got)
	}
	if got := m[0].Action(); got != "quarantine" {
		t.Errorf("Action() = %q", got)
	}
	f, ok := Finding(m, "mail/a.doc")
	if !ok || f.Tag != "malware_yara" || f.Path != "mail/a.doc" || f.Detail != "yara: test:demo (critical)" {
		t.Errorf("Finding = %+v, %v", f, ok)
	}
	// The result must not alias the engine's rule index.
	m[0].Meta["severity"] = "low"
	m2, _ := e.ScanBytes(context.Background(), []byte("alpha"), Vars{})
	if m2[0].Meta["severity"] != "Critical" {
		t.Errorf("modifying a result changed the engine's meta")
	}
}

func TestStrongest(t *testing.T) {
	ms := []Match{
		{Rule: "a", Meta: map[string]any{"severity": "low", "action": "tag"}},
		{Rule: "b", Meta: map[string]any{"severity": "critical", "action": "hold"}},
		{Rule: "c", Meta: map[string]any{"action": "reject"}},
		{Rule: "d", Meta: map[string]any{"severity": "medium", "action": "bogus"}},
	}
	if sev, act := Strongest(ms); sev != SeverityCritical || act != "reject" {
		t.Errorf("Strongest = %q, %q", sev, act)
	}
	if sev, act := Strongest(ms[3:]); sev != SeverityMedium || act != "" {
		t.Errorf("Strongest(d) = %q, %q", sev, act)
	}
	if sev, act := Strongest(nil); sev != "" || act != "" {
		t.Errorf("Strongest(nil) = %q, %q", sev, act)
	}
}

func TestScanExternalVariables(t *testing.T) {
	e := engineFor(t, `
rule by_name { condition: filename matches /^invoice.*\.zip$/ }
rule by_ext  { condition: extension == "docm" }
rule by_type { condition: filetype == "application/pdf" }
rule by_path { condition: filepath contains "/nested/" }
`)
	check := func(v Vars, want ...string) {
		t.Helper()
		m, err := e.ScanBytes(context.Background(), []byte("data"), v)
		if err != nil {
			t.Fatal(err)
		}
		if got := ruleNames(m); !cmp.Equal(got, want) {
			t.Errorf("vars %+v: matches %v, want %v", v, got, want)
		}
	}
	check(Vars{Filename: "invoice-3.zip"}, "by_name")
	check(Vars{Filename: "Report.DOCM"}, "by_ext")
	check(Vars{Filename: "x.pdf", Extension: ".DocM"}, "by_ext")
	check(Vars{Filetype: "application/pdf"}, "by_type")
	check(Vars{Filepath: "a.zip/nested/b.exe"}, "by_path")
	check(Vars{})
}

func TestScanEmptyAndNoRules(t *testing.T) {
	e := engineFor(t, `rule empty { condition: filesize == 0 }`)
	m, err := e.ScanBytes(context.Background(), nil, Vars{})
	if err != nil || len(m) != 1 {
		t.Errorf("empty scan = %v, %v", m, err)
	}
	m, err = e.Scan(context.Background(), bytes.NewReader(nil), 0, Vars{})
	if err != nil || len(m) != 1 {
		t.Errorf("empty Scan = %v, %v", m, err)
	}
	none := NewEngine(nil, 0)
	if m, err := none.ScanBytes(context.Background(), []byte("x"), Vars{}); m != nil || err != nil {
		t.Errorf("engine without rules = %v, %v", m, err)
	}
}

const markerRules = `
rule marker { strings: $m = "MAILGUARD-MARKER" condition: $m }
rule size_and_head { condition: uint32be(0) == 0x4d475331 and filesize == 12582912 }
`

// bigSample is 12 MiB starting with "MGS1" and holding the marker across
// the boundary of the first 4 MiB block.
func bigSample() []byte {
	b := make([]byte, 12<<20)
	copy(b, "MGS1")
	copy(b[blockSize-7:], "MAILGUARD-MARKER")
	return b
}

func TestScanReaderKinds(t *testing.T) {
	e := engineFor(t, markerRules)
	data := bigSample()
	path := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := []string{"marker", "size_and_head"}
	check := func(name string, ra io.ReaderAt, size int64, maxBuf int64, want []string) {
		t.Helper()
		e.MaxBuffer = maxBuf
		m, err := e.Scan(context.Background(), ra, size, Vars{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := ruleNames(m); !cmp.Equal(got, want) {
			t.Errorf("%s: matches %v, want %v", name, got, want)
		}
	}
	check("mmap file", f, int64(len(data)), 0, want)
	check("buffered reader", bytes.NewReader(data), int64(len(data)), 0, want)
	check("blocks", bytes.NewReader(data), int64(len(data)), 1<<20, want)
	// A section of a file: the data starts at an unaligned offset.
	prefixed := append([]byte("0123456789abc"), data...)
	path2 := filepath.Join(t.TempDir(), "prefixed.bin")
	if err := os.WriteFile(path2, prefixed, 0o600); err != nil {
		t.Fatal(err)
	}
	f2, err := os.Open(path2)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	check("mmap section", io.NewSectionReader(f2, 13, int64(len(data))), int64(len(data)), 0, want)
	check("short size", f, 100, 0, nil)
}

func TestScanShortReader(t *testing.T) {
	e := engineFor(t, markerRules)
	if _, err := e.Scan(context.Background(), bytes.NewReader([]byte("abc")), 10, Vars{}); err == nil {
		t.Error("Scan of a reader shorter than size succeeded")
	}
	e.MaxBuffer = 1
	if _, err := e.Scan(context.Background(), bytes.NewReader(make([]byte, 100)), 8<<20, Vars{}); err == nil {
		t.Error("block scan of a reader shorter than size succeeded")
	}
	path := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(path, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := e.Scan(context.Background(), f, 4096, Vars{}); err == nil {
		t.Error("Scan of a file shorter than size succeeded")
	}
}

// slowRules take about 10 s of CPU on 64 MiB of zeros (an inner loop per
// byte), so a scan that stops within a second or two was stopped by its
// deadline, even on a loaded machine.
const slowRules = `rule slow { condition: for all i in (0..filesize-1) : (for all j in (0..3) : (uint8(i+j) != 0xff)) }`

func TestScanTimeout(t *testing.T) {
	e := engineFor(t, slowRules)
	e.Timeout = 150 * time.Millisecond
	data := make([]byte, 64<<20)
	start := time.Now()
	m, err := e.ScanBytes(context.Background(), data, Vars{})
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || m != nil {
		t.Fatalf("ScanBytes = %v, %v; want ErrTimeout", m, err)
	}
	if took > 2*time.Second {
		t.Errorf("timeout of 150ms took %v", took)
	}
	// The scanner that timed out is reused and works.
	e.Timeout = time.Minute
	if _, err := e.ScanBytes(context.Background(), make([]byte, 10), Vars{}); err != nil {
		t.Errorf("scan after timeout: %v", err)
	}
}

func TestScanContextCancelAndDeadline(t *testing.T) {
	e := engineFor(t, slowRules)
	data := make([]byte, 64<<20)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := e.ScanBytes(ctx, data, Vars{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan: err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("cancel after 100ms took %v", took)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = e.ScanBytes(ctx, data, Vars{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline scan: err = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("deadline of 100ms took %v", took)
	}
	if _, err := e.ScanBytes(ctx, data, Vars{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("scan with an expired context: err = %v", err)
	}
}

func TestScanTooManyMatchesIsNotAnError(t *testing.T) {
	e := engineFor(t, `rule many { strings: $a = "ABCD" condition: #a > 100 }`)
	data := bytes.Repeat([]byte("ABCD"), 1_100_000) // more than libyara's 1,000,000 matches per string
	m, err := e.ScanBytes(context.Background(), data, Vars{})
	if err != nil || len(m) != 1 {
		t.Errorf("ScanBytes = %v, %v; want the rule to match", ruleNames(m), err)
	}
}

// TestSwapDuringConcurrentScans runs scans on several goroutines while the
// rule set is swapped many times. Every scan must see exactly one
// generation's rules, and old generations must be freed (run with -race).
func TestSwapDuringConcurrentScans(t *testing.T) {
	dir := t.TempDir()
	compileGen := func(gen int) *Rules {
		t.Helper()
		p := filepath.Join(dir, fmt.Sprintf("gen%d.yar", gen))
		src := fmt.Sprintf("rule gen_%d { strings: $a = \"common-needle\" condition: $a }\n"+
			"rule gen_%d_b { condition: filesize > 0 }\n", gen, gen)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return mustCompile(t, dir, p)
	}
	const gens = 30
	sets := make([]*Rules, gens+1)
	for gen := range sets {
		sets[gen] = compileGen(gen)
	}
	e := NewEngine(sets[0], time.Minute)
	defer e.Close()
	data := []byte(strings.Repeat("filler ", 1000) + "common-needle")

	var stop atomic.Bool
	var scans atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				m, err := e.ScanBytes(context.Background(), data, Vars{Filename: "x.txt"})
				if err != nil {
					errs <- err
					return
				}
				if len(m) != 2 || m[1].Rule != m[0].Rule+"_b" {
					errs <- fmt.Errorf("inconsistent matches %v", ruleNames(m))
					return
				}
				scans.Add(1)
			}
		}()
	}
	for gen := 1; gen <= gens; gen++ {
		e.Swap(sets[gen])
		time.Sleep(2 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	m, err := e.ScanBytes(context.Background(), data, Vars{})
	if err != nil || len(m) == 0 || m[0].Rule != "gen_30" {
		t.Errorf("after swaps: %v, %v; want gen_30", ruleNames(m), err)
	}
	if scans.Load() == 0 {
		t.Error("no scan completed")
	}
	// Nothing but the current generation may still be held.
	e.mu.Lock()
	if e.cur == nil || e.cur.refs != 0 {
		t.Errorf("current rule set refs = %+v", e.cur)
	}
	e.mu.Unlock()
}

func TestSwapFreesOldRulesAfterLastScan(t *testing.T) {
	e := engineFor(t, slowRules)
	e.Timeout = time.Minute
	old := e.cur
	data := make([]byte, 8<<20)
	done := make(chan error)
	go func() {
		_, err := e.ScanBytes(context.Background(), data, Vars{})
		done <- err
	}()
	// Wait until the scan holds the rule set.
	for {
		e.mu.Lock()
		refs := old.refs
		e.mu.Unlock()
		if refs > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	dir := writeFiles(t, map[string]string{"n.yar": "rule next { condition: true }"})
	e.Swap(mustCompile(t, dir, "n.yar"))
	e.mu.Lock()
	if old.rules.y == nil {
		t.Error("old rules freed while a scan was running")
	}
	e.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if old.rules.y != nil || old.idle != nil {
		t.Error("old rules not freed after the last scan")
	}
}

func TestClosedEngine(t *testing.T) {
	e := engineFor(t, markerRules)
	e.Close()
	if _, err := e.ScanBytes(context.Background(), []byte("x"), Vars{}); !errors.Is(err, ErrClosed) {
		t.Errorf("scan after Close: %v", err)
	}
	dir := writeFiles(t, map[string]string{"n.yar": "rule next { condition: true }"})
	r := mustCompile(t, dir, "n.yar")
	e.Swap(r)
	if r.y != nil {
		t.Error("Swap on a closed engine kept the rules")
	}
}

func TestDirectAccessLayout(t *testing.T) {
	// go.mod pins go-yara v4.2.4, whose layout the fast paths rely on.
	if !directAccess {
		t.Error("go-yara layout changed: sub-second timeouts and cancellation are off")
	}
}
