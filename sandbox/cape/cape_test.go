package cape

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/sandbox/capetest"
)

func emu(t *testing.T, cfg capetest.Config) *capetest.Server {
	t.Helper()
	s, err := capetest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func client(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func file(content string, opts map[string]string) sandbox.File {
	h := sha256.Sum256([]byte(content))
	return sandbox.File{
		SHA256: hex.EncodeToString(h[:]), Name: "invoice.doc", Size: int64(len(content)), Options: opts,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil },
	}
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func ptr(f float64) *float64 { return &f }

// wantKind checks an error's classification.
func wantKind(t *testing.T, err error, kind sandbox.Kind, temporary bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", kind)
	}
	if got := sandbox.KindOf(err); got != kind || sandbox.IsTemporary(err) != temporary {
		t.Errorf("error %q: kind %s temporary %v, want %s %v", err, got, sandbox.IsTemporary(err), kind, temporary)
	}
}

func TestSubmitPollReport(t *testing.T) {
	ctx := context.Background()
	f := file("macro document", map[string]string{"password": "Abc12345", "package": "doc", "enable_multi_password": "1"})
	e := emu(t, capetest.Config{Tokens: []string{"k1"}, Verdicts: map[string]capetest.Verdict{
		f.SHA256: {Profile: "family", Delay: capetest.Duration(time.Hour)},
	}})
	c := client(t, Config{URL: e.URL, Token: "k1", Defaults: Submission{Timeout: 120, Machine: "win10", Options: map[string]string{"procmemdump": "0"}}})
	id, err := c.Submit(ctx, f)
	if err != nil || id != "1" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
	if _, err := c.Status(ctx, id); !errors.Is(err, sandbox.ErrPending) {
		t.Fatalf("Status before the report: %v, want ErrPending", err)
	}
	v, err := c.TaskView(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v.Options != "enable_multi_password=1,password=Abc12345,procmemdump=0" || v.Sample.SHA256 != f.SHA256 {
		t.Errorf("view: options %q sample %q", v.Options, v.Sample.SHA256)
	}
	e.SetVerdict(f.SHA256, capetest.Verdict{Profile: "family"})
	f2 := file("same profile, no delay", nil)
	e.SetVerdict(f2.SHA256, capetest.Verdict{Profile: "family"})
	id2, err := c.Submit(ctx, f2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Status(ctx, id2)
	if err != nil {
		t.Fatal(err)
	}
	want := sandbox.Verdict{SHA256: f2.SHA256, TaskID: "2", State: sandbox.StateDone, Malscore: 10, Malstatus: "Malicious",
		Signatures: []string{"office_suspicious_processes", "emotet_behavior"}, Detections: []string{"Emotet"}, Family: "Emotet"}
	if d := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".At" }, cmp.Ignore())); d != "" {
		t.Errorf("verdict (-want +got):\n%s", d)
	}
}

func TestSubmitFormFields(t *testing.T) {
	ctx := context.Background()
	e := emu(t, capetest.Config{})
	c := client(t, Config{URL: strings.TrimSuffix(e.URL, "/"), Defaults: Submission{Package: "exe", Timeout: 60, Priority: 2}})
	f := file("x", map[string]string{"package": "zip", "file": "a.exe", "route": "none"})
	f.Name = "請求書.zip"
	if _, err := c.Submit(ctx, f); err != nil {
		t.Fatal(err)
	}
	v, err := c.TaskView(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v.Options != "file=a.exe" {
		t.Errorf("options = %q", v.Options)
	}
	// The rest is checked on the raw view, from the emulator's side.
	resp, err := http.Get(e.URL + "tasks/view/1/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"package":"zip"`, `"timeout":60`, `"priority":2`, `"route":"none"`, `"target":"` + f.SHA256[:16] + `.zip"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("view lacks %s: %s", want, b)
		}
	}
}

func TestUploadName(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"invoice.doc":              "invoice.doc",
		"請求書.xlsm":                 "abababababababab.xlsm",
		"C:\\Users\\x\\report.PDF": "report.pdf",
		"../../etc/passwd":         "passwd",
		"invoice\u202Efdp.exe":     "invoice_fdp.exe",
		"":                         "abababababababab",
		"archive.tar.gz":           "archive.tar.gz",
		"見積書 (1).docx":             "1.docx",
		"file.日本":                  "file",
	} {
		if got := UploadName(in, h); got != want {
			t.Errorf("UploadName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOptionsString(t *testing.T) {
	s, err := OptionsString(map[string]string{"password": "p=w", "file": "a.exe", "empty": ""})
	if err != nil || s != "file=a.exe,password=p=w" {
		t.Errorf("OptionsString = %q, %v", s, err)
	}
	for _, bad := range []map[string]string{
		{"password": "a,b"}, {"password": " lead"}, {"password": "nl\n"}, {"bad key": "v"}, {"k=v": "v"},
	} {
		if _, err := OptionsString(bad); err == nil {
			t.Errorf("OptionsString(%q) accepted", bad)
		}
	}
	c := client(t, Config{URL: "http://127.0.0.1:1/apiv2/"})
	_, err = c.Submit(context.Background(), file("x", map[string]string{"password": "has,comma"}))
	wantKind(t, err, sandbox.KindRejected, false)
}

// TestEmulatedErrorShapes covers each failure the emulator can produce.
func TestEmulatedErrorShapes(t *testing.T) {
	ctx := context.Background()
	f := file("payload", nil)
	noScore := file("no score", nil)
	bad := file("bad analysis", nil)
	e := emu(t, capetest.Config{Tokens: []string{"good"}, ForbiddenTokens: []string{"weak"}, MaxSampleSize: 100,
		Verdicts: map[string]capetest.Verdict{noScore.SHA256: {NoMalscore: true}, bad.SHA256: {Fail: "failed_analysis"}}})
	good := client(t, Config{URL: e.URL, Token: "good"})

	_, err := client(t, Config{URL: e.URL}).Submit(ctx, f)
	wantKind(t, err, sandbox.KindAuth, false)
	_, err = client(t, Config{URL: e.URL, Token: "bad"}).TaskStatus(ctx, 1)
	wantKind(t, err, sandbox.KindAuth, false)
	_, err = client(t, Config{URL: e.URL, Token: "weak"}).TaskStatus(ctx, 1)
	wantKind(t, err, sandbox.KindAuth, false)
	_, err = client(t, Config{URL: strings.TrimSuffix(e.URL, "apiv2/"), Token: "good"}).TaskStatus(ctx, 1)
	wantKind(t, err, sandbox.KindConfig, false)

	_, err = good.TaskStatus(ctx, 99)
	wantKind(t, err, sandbox.KindNotFound, false)
	_, err = good.Status(ctx, "99")
	wantKind(t, err, sandbox.KindNotFound, false)
	_, err = good.Status(ctx, "1;DROP")
	wantKind(t, err, sandbox.KindNotFound, false)

	big := file(strings.Repeat("x", 101), nil)
	_, err = good.Submit(ctx, big)
	wantKind(t, err, sandbox.KindRejected, false)
	_, err = client(t, Config{URL: e.URL, Token: "good", Defaults: Submission{Machine: "nosuch"}}).Submit(ctx, f)
	wantKind(t, err, sandbox.KindConfig, false)
	_, err = client(t, Config{URL: e.URL, Token: "good", Defaults: Submission{Tags: "x86,x64"}}).Submit(ctx, f)
	wantKind(t, err, sandbox.KindConfig, false)

	id, err := good.Submit(ctx, noScore)
	if err != nil {
		t.Fatal(err)
	}
	_, err = good.Status(ctx, id)
	wantKind(t, err, sandbox.KindTaskFailed, false)
	id, err = good.Submit(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = good.Status(ctx, id)
	wantKind(t, err, sandbox.KindTaskFailed, false)
	_, err = good.Report(ctx, 2)
	wantKind(t, err, sandbox.KindTaskFailed, false)

	e.SetDisabled("tasks/status", true)
	_, err = good.TaskStatus(ctx, 1)
	wantKind(t, err, sandbox.KindConfig, false)
	e.SetDisabled("tasks/status", false)

	e.SetMalformed(true)
	_, err = good.TaskStatus(ctx, 1)
	wantKind(t, err, sandbox.KindProtocol, true)
	_, err = good.Report(ctx, 1)
	wantKind(t, err, sandbox.KindProtocol, true)
	e.SetMalformed(false)

	e.SetDown(capetest.Unavailable)
	_, err = good.TaskStatus(ctx, 1)
	wantKind(t, err, sandbox.KindUnavailable, true)
	e.SetDown(capetest.Reset)
	_, err = good.TaskStatus(ctx, 1)
	wantKind(t, err, sandbox.KindUnavailable, true)
	e.SetDown(capetest.Refuse)
	_, err = good.Submit(ctx, f)
	wantKind(t, err, sandbox.KindUnavailable, true)
	e.SetDown(capetest.Up)

	e.SetLatency(300 * time.Millisecond)
	_, err = client(t, Config{URL: e.URL, Token: "good", RequestTimeout: 50 * time.Millisecond}).TaskStatus(ctx, 1)
	wantKind(t, err, sandbox.KindUnavailable, true)
	e.SetLatency(0)
	if _, err := good.TaskStatus(ctx, 1); err != nil {
		t.Errorf("after the outage: %v", err)
	}
}

func TestDuplicateAndReportPermission(t *testing.T) {
	ctx := context.Background()
	f := file("seen before", nil)
	e := emu(t, capetest.Config{Unique: true, ReportsForbidden: true})
	c := client(t, Config{URL: e.URL})
	id, err := c.Submit(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Submit(ctx, f)
	wantKind(t, err, sandbox.KindDuplicate, false)
	_, err = c.Status(ctx, id)
	wantKind(t, err, sandbox.KindAuth, false)
}

func TestThrottle429PausesTheClient(t *testing.T) {
	ctx := context.Background()
	e := emu(t, capetest.Config{Tokens: []string{"u"}, Throttle: "2/m"})
	c := client(t, Config{URL: e.URL, Token: "u"})
	for i := 0; i < 2; i++ {
		if _, err := c.Health(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Health(ctx)
	wantKind(t, err, sandbox.KindRateLimited, true)
	if ra := sandbox.RetryAfter(err); ra < 50*time.Second || ra > 60*time.Second {
		t.Errorf("RetryAfter = %v", ra)
	}
	before := e.Requests("")
	_, err = c.TaskStatus(ctx, 1)
	wantKind(t, err, sandbox.KindRateLimited, true)
	if e.Requests("") != before {
		t.Errorf("the client sent a request while throttled")
	}
	if e.Throttled() != 1 {
		t.Errorf("emulator throttled %d requests, want 1", e.Throttled())
	}
}

func TestClientRateLimit(t *testing.T) {
	ctx := context.Background()
	e := emu(t, capetest.Config{})
	c := client(t, Config{URL: e.URL, RequestsPerMinute: 1200}) // 20/s, burst 1
	start := time.Now()
	for i := 0; i < 6; i++ {
		c.TaskStatus(ctx, 1)
	}
	if d := time.Since(start); d < 240*time.Millisecond {
		t.Errorf("6 requests at 20/s took %v, want at least 250ms", d)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	slow := client(t, Config{URL: e.URL, RequestsPerMinute: 1})
	slow.TaskStatus(ctx, 1)
	_, err := slow.TaskStatus(short, 1)
	wantKind(t, err, sandbox.KindRateLimited, true)
}

func TestConcurrencyCap(t *testing.T) {
	ctx := context.Background()
	e := emu(t, capetest.Config{})
	e.SetLatency(60 * time.Millisecond)
	c := client(t, Config{URL: e.URL, MaxConcurrent: 2})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.TaskStatus(ctx, 1)
		}()
	}
	wg.Wait()
	if m := e.MaxConcurrent(); m != 2 {
		t.Errorf("emulator saw %d concurrent requests, want 2", m)
	}
}

func TestTLS(t *testing.T) {
	ctx := context.Background()
	e := emu(t, capetest.Config{TLS: true})
	_, err := client(t, Config{URL: e.URL}).Health(ctx)
	wantKind(t, err, sandbox.KindConfig, false)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, e.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, Config{URL: e.URL, CAFile: ca}).Health(ctx); err != nil {
		t.Errorf("with the CA file: %v", err)
	}
	if _, err := client(t, Config{URL: e.URL, InsecureSkipVerify: true}).Health(ctx); err != nil {
		t.Errorf("with InsecureSkipVerify: %v", err)
	}
	_, err = client(t, Config{URL: strings.Replace(e.URL, "https:", "http:", 1)}).Health(ctx)
	if err == nil {
		t.Error("plain http to a TLS server succeeded")
	}
	if _, err := New(Config{URL: e.URL, CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil {
		t.Error("missing CA file accepted")
	}
	for _, bad := range []Config{{URL: "ftp://x/apiv2/"}, {URL: "http:///apiv2/"}, {URL: e.URL, Token: "a b"}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

func TestArchiveAggregationAndRecovery(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC)}
	archive := file("PK\x03\x04 zip", nil)
	c1, c2 := strings.Repeat("c", 64), strings.Repeat("d", 64)
	rec := file("recovering", nil)
	e := emu(t, capetest.Config{Now: clk.Now, Delay: time.Minute, Verdicts: map[string]capetest.Verdict{
		archive.SHA256: {Children: []string{c1, c2}},
		c1:             {Profile: "suspicious"},
		c2:             {Profile: "family"},
		rec.SHA256:     {Recover: true, Profile: "malicious"},
	}})
	c := client(t, Config{URL: e.URL, Now: clk.Now})
	id, err := c.Submit(ctx, archive)
	if err != nil || id != "1,2" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
	rid, err := c.Submit(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)
	if _, err := c.Status(ctx, rid); !errors.Is(err, sandbox.ErrPending) {
		t.Fatalf("recovered task: %v, want pending", err)
	}
	clk.Advance(2 * time.Minute)
	v, err := c.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if v.Malscore != 10 || v.Family != "Emotet" || len(v.Signatures) != 5 || v.TaskID != "1,2" || v.SHA256 != "" {
		t.Errorf("archive verdict = %+v", v)
	}
	v, err = c.Status(ctx, rid)
	if err != nil || v.Malscore != 8.5 || v.TaskID != sandbox.TaskID(rid) {
		t.Errorf("recovered verdict = %+v, %v", v, err)
	}
}

func TestSearch(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC)}
	known := file("known", map[string]string{"password": "pw"})
	failing := file("failing", nil)
	slow := file("slow", nil)
	e := emu(t, capetest.Config{Now: clk.Now, Verdicts: map[string]capetest.Verdict{
		failing.SHA256: {Fail: "failed_processing"},
		slow.SHA256:    {NeverFinish: true},
	}})
	c := client(t, Config{URL: e.URL, Now: clk.Now})

	_, found, err := c.SearchSHA256(ctx, known.SHA256, known.Options)
	if err != nil || found || e.Requests("files/view") != 1 || e.Requests("tasks/search") != 0 {
		t.Fatalf("unknown content: found %v err %v; requests %v", found, err, e.RequestCounts())
	}
	for _, f := range []sandbox.File{known, known, failing, slow} {
		if _, err := c.Submit(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	check := func(f sandbox.File, opts map[string]string, wantID string, wantFound bool) {
		t.Helper()
		id, found, err := c.SearchSHA256(ctx, f.SHA256, opts)
		if err != nil || found != wantFound || string(id) != wantID {
			t.Errorf("SearchSHA256 = %q %v %v, want %q %v", id, found, err, wantID, wantFound)
		}
	}
	check(known, map[string]string{"password": "pw"}, "2", true) // newest reported
	check(known, nil, "", false)                                 // analysed with a password only
	check(known, map[string]string{"password": "other"}, "", false)
	check(failing, nil, "", false)
	check(slow, nil, "4", true) // still running: adopt it
	clk.Advance(8 * 24 * time.Hour)
	check(known, map[string]string{"password": "pw"}, "", false) // too old
	_, _, err = c.SearchSHA256(ctx, "ABC", nil)
	wantKind(t, err, sandbox.KindInternal, false)
}

func TestContentMismatchIsNotUploaded(t *testing.T) {
	e := emu(t, capetest.Config{})
	c := client(t, Config{URL: e.URL})
	f := file("real content", nil)
	f.SHA256 = hashOf("other content")
	_, err := c.Submit(context.Background(), f)
	wantKind(t, err, sandbox.KindInternal, false)
	f = file("real content", nil)
	f.Size--
	_, err = c.Submit(context.Background(), f)
	wantKind(t, err, sandbox.KindInternal, false)
	if n := e.TotalSubmissions(); n != 0 {
		t.Errorf("emulator accepted %d uploads of bad content", n)
	}
	f = file("real content", nil)
	f.Open = func() (io.ReadCloser, error) { return nil, os.ErrNotExist }
	_, err = c.Submit(context.Background(), f)
	wantKind(t, err, sandbox.KindInternal, false)
}

// TestEnvelopeRule checks "a call failed only if error === true" and the
// shapes the emulator does not produce, against a scripted server.
func TestEnvelopeRule(t *testing.T) {
	type answer struct {
		status int
		ctype  string
		body   string
		header map[string]string
	}
	var mu sync.Mutex
	var next answer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a := next
		mu.Unlock()
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", a.ctype)
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	c := client(t, Config{URL: srv.URL + "/apiv2/"})
	set := func(a answer) {
		mu.Lock()
		defer mu.Unlock()
		if a.ctype == "" {
			a.ctype = "application/json"
		}
		if a.status == 0 {
			a.status = 200
		}
		next = a
	}
	ctx := context.Background()
	for _, body := range []string{
		`{"error": false, "data": "running"}`, `{"error": [], "data": "running"}`, `{"data": "running"}`,
		`{"error": null, "data": "running"}`, `{"error": "true", "data": "running"}`, `{"error": {}, "data": "running"}`,
	} {
		set(answer{body: body})
		if st, err := c.TaskStatus(ctx, 1); err != nil || st != "running" {
			t.Errorf("%s: %q %v", body, st, err)
		}
	}
	f := file("content", nil)
	for _, tc := range []struct {
		name string
		a    answer
		kind sandbox.Kind
		temp bool
	}{
		{"error true", answer{body: `{"error": true, "error_value": "Error adding task to database"}`}, sandbox.KindUnavailable, true},
		{"disk full", answer{body: `{"error": true, "error_value": "Error adding task to database", "errors": ["Temp folder from cuckoo.conf, disk is out of space. Clean some space before continue."]}`}, sandbox.KindUnavailable, true},
		{"nested item", answer{body: `{"error": true, "error_value": "x", "errors": [{"a.doc": {"error": "Route vpn0 is not available"}}]}`}, sandbox.KindConfig, false},
		{"unknown item", answer{body: `{"error": true, "error_value": "x", "errors": [{"a.doc": "sflock says no"}]}`}, sandbox.KindRejected, false},
		{"unknown message", answer{body: `{"error": true, "error_value": "something new"}`}, sandbox.KindConfig, false},
		{"rate limit handler", answer{body: `{"error": true, "error_value": "Rate limit exceeded for this API"}`}, sandbox.KindRateLimited, true},
		{"no task ids", answer{body: `{"error": [], "data": {"task_ids": []}}`}, sandbox.KindProtocol, false},
		{"bad task id", answer{body: `{"error": [], "data": {"task_ids": [-1]}}`}, sandbox.KindProtocol, false},
		{"html 200", answer{ctype: "text/html", body: "<html><title>Login</title></html>"}, sandbox.KindConfig, false},
		{"html 500", answer{status: 500, ctype: "text/html", body: "<h1>Server Error (500)</h1>"}, sandbox.KindUnavailable, true},
		{"502", answer{status: 502, body: "bad gateway"}, sandbox.KindUnavailable, true},
		{"413", answer{status: 413, ctype: "text/html", body: "<title>413 Request Entity Too Large</title>"}, sandbox.KindRejected, false},
		{"405", answer{status: 405, body: `{"detail": "Method \"POST\" not allowed."}`}, sandbox.KindProtocol, false},
		{"404 json", answer{status: 404, body: `{"error": true, "error_value": "Task not found"}`}, sandbox.KindNotFound, false},
		{"redirect", answer{status: 302, header: map[string]string{"Location": "/accounts/login/"}}, sandbox.KindConfig, false},
		{"429 date", answer{status: 429, body: `{"detail": "Request was throttled."}`, header: map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}, sandbox.KindRateLimited, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.a)
			c.mu.Lock()
			c.pauseEnd = time.Time{}
			c.mu.Unlock()
			_, err := c.Submit(ctx, f)
			wantKind(t, err, tc.kind, tc.temp)
		})
	}
	c.mu.Lock()
	c.pauseEnd = time.Time{}
	c.mu.Unlock()
	set(answer{body: `{"error": [], "data": {"task_ids": ["7", 8]}, "errors": [{"b.exe": "skipped"}]}`})
	if id, err := c.Submit(ctx, f); err != nil || id != "7,8" {
		t.Errorf("partial success = %q, %v", id, err)
	}
	set(answer{status: 404, body: `{"error": true, "error_value": "Sample not found"}`})
	if ok, err := c.FileExists(ctx, f.SHA256); ok || err != nil {
		t.Errorf("multitenant 404 for a sample: %v, %v", ok, err)
	}
}

func TestReportLimit(t *testing.T) {
	e := emu(t, capetest.Config{Default: capetest.Verdict{Profile: "malicious"}})
	c := client(t, Config{URL: e.URL, MaxReportBytes: 1000})
	id, err := c.Submit(context.Background(), file("x", nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background(), id)
	wantKind(t, err, sandbox.KindTaskFailed, false)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
