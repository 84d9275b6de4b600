package capetest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

type reply struct {
	status int
	header http.Header
	body   []byte
	obj    map[string]any
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	json.Unmarshal(b, &r.obj)
	return r
}

func get(t *testing.T, s *Server, path string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

// submit posts content as the "file" part plus form fields.
func submit(t *testing.T, s *Server, name string, content []byte, fields map[string]string, hdr ...string) reply {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if content != nil {
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(content)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", s.URL+"tasks/create/file/", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func taskIDs(t *testing.T, r reply) []int {
	t.Helper()
	if r.status != 200 || string(mustJSON(r.obj["error"])) != "[]" {
		t.Fatalf("submit: status %d body %s", r.status, r.body)
	}
	data, _ := r.obj["data"].(map[string]any)
	var ids []int
	for _, x := range data["task_ids"].([]any) {
		ids = append(ids, int(x.(float64)))
	}
	return ids
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func wantLogicalError(t *testing.T, r reply, want string) {
	t.Helper()
	if r.status != 200 || r.obj["error"] != true || r.obj["error_value"] != want {
		t.Errorf("got %d %s, want 200 error_value %q", r.status, r.body, want)
	}
}

func TestUnmatchedRoutesAreDjangoHTML404(t *testing.T) {
	s := start(t, Config{})
	for _, p := range []string{
		"tasks/status/1",            // no trailing slash
		"tasks/search/sha256/abcd/", // wrong hash length
		"tasks/search/md5/" + strings.Repeat("a", 64) + "/",
		"tasks/status/x/",
		"nothing/",
	} {
		r := get(t, s, p)
		if r.status != 404 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !bytes.Contains(r.body, []byte("<h1>Not Found</h1>")) {
			t.Errorf("%s: got %d %q %s", p, r.status, r.header.Get("Content-Type"), r.body)
		}
	}
	if n := s.Requests("404"); n != 5 {
		t.Errorf("Requests(404) = %d, want 5", n)
	}
}

func TestTaskLifecycleAndReport(t *testing.T) {
	clk := newClock()
	content := []byte("MZ fake executable")
	h := sha(content)
	score := 7.5
	s := start(t, Config{Now: clk.Now, Delay: 100 * time.Second, Verdicts: map[string]Verdict{
		h: {Profile: "malicious", Malscore: &score, Signatures: []string{"injection_runpe", "made_up_sig"}, Families: []string{"AgentTesla"}},
	}})
	ids := taskIDs(t, submit(t, s, "請求書.exe", content, map[string]string{"options": "password=Abc12345,enable_multi_password=1", "package": "exe", "timeout": "bogus"}))
	if len(ids) != 1 {
		t.Fatalf("task_ids = %v", ids)
	}
	id := "1"
	wantStatus := func(st string) {
		t.Helper()
		r := get(t, s, "tasks/status/"+id+"/")
		if r.obj["error"] != false || r.obj["data"] != st {
			t.Errorf("status = %s, want %s", r.body, st)
		}
	}
	wantStatus("pending")
	wantLogicalError(t, get(t, s, "tasks/get/report/"+id+"/"), "Task is still being analyzed")
	clk.Advance(20 * time.Second)
	wantStatus("running")
	clk.Advance(50 * time.Second)
	wantStatus("completed")
	clk.Advance(30 * time.Second)
	wantStatus("reported")

	view := get(t, s, "tasks/view/"+id+"/")
	data := view.obj["data"].(map[string]any)
	if data["options"] != "password=Abc12345,enable_multi_password=1" || data["package"] != "exe" ||
		data["timeout"] != 0.0 || data["priority"] != 1.0 || data["target"] != "___.exe" {
		t.Errorf("view = %s", view.body)
	}
	if smp := data["sample"].(map[string]any); smp["sha256"] != h || smp["file_type"] != "PE32 executable (GUI) Intel 80386, for MS Windows" {
		t.Errorf("view sample = %v", smp)
	}

	r := get(t, s, "tasks/get/report/"+id+"/json/")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json; charset=UTF-8" ||
		r.header.Get("Content-Disposition") != "attachment; filename=1_report.json" {
		t.Fatalf("report: %d %v", r.status, r.header)
	}
	if r.obj["malscore"] != 7.5 || r.obj["malstatus"] != "Malicious" {
		t.Errorf("malscore/malstatus = %v/%v", r.obj["malscore"], r.obj["malstatus"])
	}
	sigs := r.obj["signatures"].([]any)
	if len(sigs) != 2 || sigs[0].(map[string]any)["name"] != "injection_runpe" || sigs[1].(map[string]any)["name"] != "made_up_sig" {
		t.Errorf("signatures = %v", sigs)
	}
	dets := r.obj["detections"].([]any)
	if len(dets) != 1 || dets[0].(map[string]any)["family"] != "AgentTesla" {
		t.Errorf("detections = %v", dets)
	}
	info := r.obj["info"].(map[string]any)
	if info["id"] != 1.0 || info["options"].(map[string]any)["password"] != "Abc12345" {
		t.Errorf("info = %v", info)
	}
	if f := r.obj["target"].(map[string]any)["file"].(map[string]any); f["sha256"] != h {
		t.Errorf("target.file.sha256 = %v", f["sha256"])
	}
	if !bytes.HasPrefix(r.body, []byte("{\n    \"")) {
		t.Errorf("report is not indented like jsondump: %.20q", r.body)
	}
	if s.Submissions(h) != 1 || s.TotalSubmissions() != 1 {
		t.Errorf("Submissions = %d", s.Submissions(h))
	}
}

func TestReportFormats(t *testing.T) {
	s := start(t, Config{})
	ids := taskIDs(t, submit(t, s, "a.doc", []byte("doc"), nil))
	_ = ids
	if r := get(t, s, "tasks/get/report/1/"); r.status != 200 || r.obj["malscore"] != 0.0 || r.obj["malstatus"] != nil {
		t.Errorf("default format: %d %v %v", r.status, r.obj["malscore"], r.obj["malstatus"])
	}
	r := get(t, s, "tasks/get/report/1/NoSuch/")
	if r.status != 400 || r.obj["error"] != true || r.obj["error_value"] != "Report format not found: nosuch" {
		t.Errorf("unknown format: %d %s", r.status, r.body)
	}
	wantLogicalError(t, get(t, s, "tasks/get/report/1/html/"), "Reports directory does not exist")
	wantLogicalError(t, get(t, s, "tasks/get/report/99/"), "Task does not exist")
	r = get(t, s, "tasks/get/report/1/json/zip/")
	if r.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("zip: %v", r.header)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil || len(zr.File) != 1 || zr.File[0].Name != "report.json" {
		t.Errorf("zip: %v", err)
	}
}

func TestSubmitErrorEnvelopes(t *testing.T) {
	content := []byte("dup me")
	s := start(t, Config{MaxSampleSize: 10, Machines: []string{"win10", "win7"}})
	wantLogicalError(t, submit(t, s, "", nil, map[string]string{"package": "exe"}), "No file was submitted")
	wantLogicalError(t, submit(t, s, "a.exe", content, map[string]string{"machine": "all"}), "Machine=all is disabled using the API")
	wantLogicalError(t, submit(t, s, "a.exe", content, map[string]string{"machine": "xp"}), "Machine 'xp' does not exist. Available: win10, win7")

	fileErr := func(r reply, name, want string) {
		t.Helper()
		wantLogicalError(t, r, "Error adding task to database")
		errs, _ := r.obj["errors"].([]any)
		if len(errs) != 1 || !strings.Contains(string(mustJSON(errs[0])), want) || !strings.Contains(string(mustJSON(errs[0])), `"`+name+`"`) {
			t.Errorf("errors = %s, want %q for %q", mustJSON(errs), want, name)
		}
	}
	fileErr(submit(t, s, "empty.txt", []byte{}, nil), "empty.txt", "You uploaded an empty file.")
	fileErr(submit(t, s, "big.bin", []byte("0123456789A"), nil), "big.bin", "Sample size is: 11 Allowed size is: 10")
	fileErr(submit(t, s, "t.bin", content, map[string]string{"tags": "x86,x64"}), "t.bin", "Check Tags help")
	taskIDs(t, submit(t, s, "d.bin", content, nil))
	fileErr(submit(t, s, "d.bin", content, map[string]string{"unique": "yes"}), "d.bin", "Duplicated file")
	s.SetDisabled("tasks/create/file", true)
	wantLogicalError(t, submit(t, s, "d.bin", content, nil), "File Create API is Disabled")

	req, _ := http.NewRequest("GET", s.URL+"tasks/create/file/", nil)
	if r := do(t, req); r.status != 405 || r.obj["detail"] != `Method "GET" not allowed.` {
		t.Errorf("GET create: %d %s", r.status, r.body)
	}
	if n := s.Submissions(sha(content)); n != 1 {
		t.Errorf("Submissions = %d, want 1", n)
	}
}

func TestTokenAuthentication(t *testing.T) {
	s := start(t, Config{Tokens: []string{"good"}, RevokedTokens: []string{"old"}, ForbiddenTokens: []string{"nope"}})
	check := func(auth string, status int, detail string) {
		t.Helper()
		var r reply
		if auth == "-" {
			r = get(t, s, "cuckoo/status/")
		} else {
			r = get(t, s, "cuckoo/status/", "Authorization", auth)
		}
		if r.status != status || (detail != "" && r.obj["detail"] != detail) {
			t.Errorf("Authorization %q: got %d %s, want %d %q", auth, r.status, r.body, status, detail)
		}
		if status == 401 && r.header.Get("WWW-Authenticate") != "Token" {
			t.Errorf("Authorization %q: WWW-Authenticate = %q", auth, r.header.Get("WWW-Authenticate"))
		}
	}
	check("-", 401, "Authentication credentials were not provided.")
	check("Bearer good", 401, "Authentication credentials were not provided.")
	check("Token", 401, "Invalid token header. No credentials provided.")
	check("Token a b", 401, "Invalid token header. Token string should not contain spaces.")
	check("Token bad", 401, "Invalid token.")
	check("Token old", 401, "API key has been revoked.")
	check("Token nope", 403, "You do not have permission to perform this action.")
	check("Token good", 200, "")
	check("token good", 200, "")
}

func TestThrottleIsSharedAndHonoursStaff(t *testing.T) {
	clk := newClock()
	s := start(t, Config{Now: clk.Now, Tokens: []string{"u"}, StaffTokens: []string{"admin"}, Throttle: "5/m"})
	for i := 0; i < 5; i++ {
		path := []string{"cuckoo/status/", "tasks/status/1/", "files/view/id/1/"}[i%3]
		if r := get(t, s, path, "Authorization", "Token u"); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
		clk.Advance(time.Second)
	}
	r := get(t, s, "tasks/view/1/", "Authorization", "Token u")
	if r.status != 429 || r.header.Get("Retry-After") != "55" || r.obj["detail"] != "Request was throttled. Expected available in 55 seconds." {
		t.Errorf("6th request: %d %v %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if r := get(t, s, "tasks/view/1/", "Authorization", "Token admin"); r.status != 200 {
		t.Errorf("staff throttled: %d", r.status)
	}
	clk.Advance(55 * time.Second)
	if r := get(t, s, "tasks/view/1/", "Authorization", "Token u"); r.status != 200 {
		t.Errorf("after the window: %d %s", r.status, r.body)
	}
	if s.Throttled() != 1 {
		t.Errorf("Throttled = %d", s.Throttled())
	}
}

func TestFailuresAndRecovery(t *testing.T) {
	clk := newClock()
	bad, flaky, rec := []byte("bad"), []byte("flaky"), []byte("recover")
	s := start(t, Config{Now: clk.Now, Delay: 10 * time.Second, Verdicts: map[string]Verdict{
		sha(bad):   {Fail: "failed_processing"},
		sha(flaky): {Fail: "failed_analysis", FailTimes: 1},
		sha(rec):   {Recover: true, Profile: "suspicious"},
	}})
	taskIDs(t, submit(t, s, "bad", bad, nil))     // 1
	taskIDs(t, submit(t, s, "flaky", flaky, nil)) // 2
	taskIDs(t, submit(t, s, "flaky", flaky, nil)) // 3
	taskIDs(t, submit(t, s, "rec", rec, nil))     // 4
	clk.Advance(5 * time.Second)
	if st := get(t, s, "tasks/status/4/").obj["data"]; st != "recovered" {
		t.Errorf("task 4 = %v, want recovered", st)
	}
	clk.Advance(5 * time.Second)
	for id, want := range map[string]string{"1": "failed_processing", "2": "failed_analysis", "3": "reported", "4": "recovered", "5": "running"} {
		if st := get(t, s, "tasks/status/"+id+"/").obj["data"]; st != want {
			t.Errorf("task %s = %v, want %s", id, st, want)
		}
	}
	wantLogicalError(t, get(t, s, "tasks/get/report/1/"), "Task failed")
	if v := get(t, s, "tasks/view/4/").obj["data"].(map[string]any); v["id"] != 5.0 || v["status"] != "running" {
		t.Errorf("view of recovered task = %v %v, want task 5", v["id"], v["status"])
	}
	clk.Advance(5 * time.Second)
	if r := get(t, s, "tasks/get/report/4/"); r.obj["malscore"] != 4.8 || r.obj["info"].(map[string]any)["id"] != 5.0 {
		t.Errorf("report of recovered task: %.200s", r.body)
	}
}

func TestArchiveChildrenAndSearch(t *testing.T) {
	archive := []byte("PK\x03\x04 archive")
	c1, c2 := strings.Repeat("1", 64), strings.Repeat("2", 64)
	s := start(t, Config{Verdicts: map[string]Verdict{
		sha(archive): {Children: []string{c1, c2}},
		c2:           {Profile: "family"},
	}})
	empty := get(t, s, "tasks/search/sha256/"+sha(archive)+"/")
	if string(empty.body) != `{"data":[],"error":false}` {
		t.Errorf("search before upload = %s", empty.body)
	}
	wantLogicalError(t, get(t, s, "files/view/sha256/"+sha(archive)+"/"), "Sample not found in database")
	r := submit(t, s, "docs.zip", archive, map[string]string{"options": "password=pw"})
	ids := taskIDs(t, r)
	if len(ids) != 2 || r.obj["data"].(map[string]any)["message"] != "Task IDs 1, 2 have been submitted" {
		t.Fatalf("archive submit = %s", r.body)
	}
	if urls := r.obj["url"].([]any); urls[0] != "http://example.tld/submit/status/1" {
		t.Errorf("multi-task url = %v (no trailing slash expected)", urls)
	}
	fv := get(t, s, "files/view/sha256/"+strings.ToUpper(sha(archive))+"/")
	if fv.obj["data"].(map[string]any)["file_type"] != "Zip archive data, at least v2.0 to extract, compression method=deflate" {
		t.Errorf("files/view = %s", fv.body)
	}
	sr := get(t, s, "tasks/search/sha256/"+sha(archive)+"/")
	data := sr.obj["data"].([]any)
	if string(mustJSON(sr.obj["error"])) != "[]" || len(data) != 2 {
		t.Fatalf("search = %s", sr.body)
	}
	for i, want := range []string{c1, c2} {
		task := data[i].(map[string]any)
		if task["sample"].(map[string]any)["sha256"] != want || task["options"] != "password=pw" || task["status"] != "reported" {
			t.Errorf("search[%d] = %v", i, task)
		}
	}
	if rep := get(t, s, "tasks/get/report/2/"); rep.obj["malscore"] != 10.0 {
		t.Errorf("child 2 malscore = %v", rep.obj["malscore"])
	}
	md5 := get(t, s, "files/view/id/1/").obj["data"].(map[string]any)["md5"].(string)
	if r := get(t, s, "tasks/search/md5/"+md5+"/"); len(r.obj["data"].([]any)) != 2 {
		t.Errorf("search by md5 = %s", r.body)
	}
}

func TestPasswordNeeded(t *testing.T) {
	zipped := []byte("PK\x03\x04 encrypted")
	s := start(t, Config{Verdicts: map[string]Verdict{sha(zipped): {Profile: "malicious", Password: "s3cret"}}})
	taskIDs(t, submit(t, s, "a.zip", zipped, nil))
	taskIDs(t, submit(t, s, "a.zip", zipped, map[string]string{"options": "password=s3cret"}))
	if r := get(t, s, "tasks/get/report/1/"); r.obj["malscore"] != 0.0 {
		t.Errorf("without password: malscore %v", r.obj["malscore"])
	}
	if r := get(t, s, "tasks/get/report/2/"); r.obj["malscore"] != 8.5 {
		t.Errorf("with password: malscore %v", r.obj["malscore"])
	}
}

func TestDownModes(t *testing.T) {
	s := start(t, Config{})
	if err := s.SetDown(Refuse); err != nil {
		t.Fatal(err)
	}
	_, err := http.Get(s.URL + "cuckoo/status/")
	// A listener that was just closed can also answer a reset when the
	// machine is busy; both mean "down" to a client.
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("refuse: err = %v, want connection refused", err)
	}
	if err := s.SetDown(Unavailable); err != nil {
		t.Fatal(err)
	}
	if r := get(t, s, "cuckoo/status/"); r.status != 503 || r.header.Get("Retry-After") != "2" {
		t.Errorf("unavailable: %d %v", r.status, r.header)
	}
	s.SetDown(Reset)
	if _, err := http.Get(s.URL + "cuckoo/status/"); err == nil {
		t.Error("reset: no error")
	}
	s.SetDown(Up)
	if r := get(t, s, "cuckoo/status/"); r.status != 200 || string(mustJSON(r.obj["error"])) != "[]" {
		t.Errorf("up again: %d %s", r.status, r.body)
	}
}

func TestMalformedAndLatency(t *testing.T) {
	s := start(t, Config{})
	s.SetMalformed(true)
	r := get(t, s, "tasks/status/1/")
	if json.Valid(r.body) || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("malformed knob: %q", r.body)
	}
	s.SetMalformed(false)
	s.SetLatency(150 * time.Millisecond)
	t0 := time.Now()
	get(t, s, "tasks/status/1/")
	if d := time.Since(t0); d < 150*time.Millisecond {
		t.Errorf("latency knob: answered in %v", d)
	}
}

func TestTLS(t *testing.T) {
	s := start(t, Config{TLS: true})
	if !strings.HasPrefix(s.URL, "https://") || len(s.CertPEM()) == 0 {
		t.Fatalf("URL %s, cert %d bytes", s.URL, len(s.CertPEM()))
	}
	if _, err := http.Get(s.URL + "cuckoo/status/"); err == nil {
		t.Error("self-signed certificate accepted by the default client")
	}
}

func TestDurationJSON(t *testing.T) {
	var v Verdict
	if err := json.Unmarshal([]byte(`{"delay": "2m30s", "never_finish": true}`), &v); err != nil || time.Duration(v.Delay) != 150*time.Second || !v.NeverFinish {
		t.Errorf("decode: %+v %v", v, err)
	}
	if err := json.Unmarshal([]byte(`{"delay": "soon"}`), &v); err == nil {
		t.Error("bad duration accepted")
	}
}
