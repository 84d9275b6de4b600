package capetest

import (
	"archive/zip"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const timeLayout = "2006-01-02 15:04:05" // Task.to_dict datetime format

// submitForm holds the tasks/create/file/ form fields (cape-api.md §5.1).
type submitForm struct {
	pkg, options, machine, platform, tags, custom, clock string
	route, tlp, tagsTasks, cape, referrer, linOptions    string
	timeout, priority                                    int
	memory, enforceTimeout, unique                       bool
}

// upload is the first "file" part, hashed while it streams by.
type upload struct {
	name                           string
	size                           int64
	md5, sha1, sha256, sha512, crc string
	head                           []byte
}

// forceInt is CAPE's force_int: an invalid or missing value is 0.
func forceInt(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return n
}

// forceBool is CAPE's force_bool.
func forceBool(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true
	}
	return false
}

// getOptions is lib/cuckoo/common/utils.py get_options: split on ",", then on
// the first "=", strip whitespace.
func getOptions(s string) map[string]string {
	m := map[string]string{}
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

// sanitizeFilename is CAPE's sanitize_filename: every character other than
// an ASCII letter, digit, space, "_", "-" or "." becomes "_".
func sanitizeFilename(name string) string {
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ' ', c == '_', c == '-', c == '.':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// readSubmission streams the multipart body: the first "file" part is hashed
// (never stored), later ones are drained (multifile = no), fields are read.
func readSubmission(r *http.Request) (submitForm, *upload, error) {
	var f submitForm
	mr, err := r.MultipartReader()
	if err != nil {
		return f, nil, nil
	}
	fields := map[string]string{}
	var up *upload
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return f, nil, err
		}
		if p.FormName() == "file" && p.FileName() != "" {
			if up == nil {
				if up, err = hashPart(p); err != nil {
					return f, nil, err
				}
				up.name = p.FileName()
			} else if _, err := io.Copy(io.Discard, p); err != nil {
				return f, nil, err
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p, 1<<16))
		if err != nil {
			return f, nil, err
		}
		if _, ok := fields[p.FormName()]; !ok {
			fields[p.FormName()] = string(b)
		}
	}
	f = submitForm{
		pkg: fields["package"], options: fields["options"], machine: fields["machine"],
		platform: fields["platform"], tags: fields["tags"], custom: fields["custom"],
		clock: fields["clock"], route: fields["route"], tlp: fields["tlp"],
		tagsTasks: fields["tags_tasks"], cape: fields["cape"], referrer: fields["referrer"],
		linOptions: fields["lin_options"], timeout: forceInt(fields["timeout"]),
		priority: forceInt(fields["priority"]), memory: forceBool(fields["memory"]),
		enforceTimeout: forceBool(fields["enforce_timeout"]), unique: forceBool(fields["unique"]),
	}
	if f.linOptions != "" {
		f.options = f.linOptions
	}
	if f.referrer != "" {
		if f.options != "" {
			f.options += ","
		}
		f.options += "referrer=" + f.referrer
	}
	if f.priority == 0 {
		f.priority = 1
	}
	return f, up, nil
}

func hashPart(p io.Reader) (*upload, error) {
	hs := []hash.Hash{md5.New(), sha1.New(), sha256.New(), sha512.New()}
	crc := crc32.NewIEEE()
	ws := []io.Writer{crc}
	for _, h := range hs {
		ws = append(ws, h)
	}
	head := &headWriter{max: 16}
	ws = append(ws, head)
	n, err := io.Copy(io.MultiWriter(ws...), p)
	if err != nil {
		return nil, err
	}
	sum := func(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
	return &upload{size: n, md5: sum(hs[0]), sha1: sum(hs[1]), sha256: sum(hs[2]), sha512: sum(hs[3]),
		crc: fmt.Sprintf("%08X", crc.Sum32()), head: head.b}, nil
}

type headWriter struct {
	b   []byte
	max int
}

func (h *headWriter) Write(p []byte) (int, error) {
	if n := h.max - len(h.b); n > 0 {
		h.b = append(h.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// fileType is a small libmagic stand-in for the sample's file_type.
func fileType(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "Zip archive data, at least v2.0 to extract, compression method=deflate"
	case bytes.HasPrefix(head, []byte("MZ")):
		return "PE32 executable (GUI) Intel 80386, for MS Windows"
	case bytes.HasPrefix(head, []byte("%PDF")):
		return "PDF document, version 1.7"
	case bytes.HasPrefix(head, []byte("\xd0\xcf\x11\xe0")):
		return "Composite Document File V2 Document, Little Endian, Os: Windows"
	case bytes.HasPrefix(head, []byte("7z\xbc\xaf")):
		return "7-zip archive data, version 0.4"
	}
	return "data"
}

// createFile serves tasks/create/file/ (cape-api.md §5).
func (e *emulator) createFile(w http.ResponseWriter, r *http.Request, _ []string) {
	if e.disabled("tasks/create/file") {
		e.fail(w, "File Create API is Disabled")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, e.cfg.MaxSampleSize+1<<20)
	form, up, err := readSubmission(r)
	if err != nil {
		e.writeJSON(w, http.StatusBadRequest, map[string]any{"detail": "Multipart form parse error - " + err.Error()})
		return
	}
	if up == nil {
		e.fail(w, "No file was submitted")
		return
	}
	if msg := e.checkMachine(form); msg != "" {
		e.fail(w, msg)
		return
	}
	up.name = storedName(form, up)
	if fileErr := e.checkFile(form, up); fileErr != nil {
		e.writeJSON(w, http.StatusOK, map[string]any{
			"error": true, "error_value": "Error adding task to database", "errors": []any{fileErr}})
		return
	}
	ids := e.addTasks(form, up)
	msg := fmt.Sprintf("Task ID %d has been submitted", ids[0])
	urls := []any{fmt.Sprintf("%s/submit/status/%d/", e.cfg.APIURL, ids[0])}
	if len(ids) > 1 {
		s := make([]string, len(ids))
		urls = urls[:0]
		for i, id := range ids {
			s[i] = strconv.Itoa(id)
			urls = append(urls, fmt.Sprintf("%s/submit/status/%d", e.cfg.APIURL, id))
		}
		msg = "Task IDs " + strings.Join(s, ", ") + " have been submitted"
	}
	idsJSON := make([]any, len(ids))
	for i, id := range ids {
		idsJSON[i] = id
	}
	e.writeJSON(w, http.StatusOK, map[string]any{
		"error": []any{}, "errors": []any{}, "url": urls,
		"data": map[string]any{"task_ids": idsJSON, "message": msg},
	})
}

// storedName is the task target: a user filename from the options
// (get_user_filename) or the part's filename, through sanitize_filename.
func storedName(form submitForm, up *upload) string {
	opts := getOptions(form.options)
	for _, k := range []string{"filename", "file_name", "name"} {
		if v := opts[k]; v != "" {
			return sanitizeFilename(v)
		}
	}
	return sanitizeFilename(up.name)
}

func (e *emulator) checkMachine(form submitForm) string {
	switch {
	case form.machine == "":
		return ""
	case strings.EqualFold(form.machine, "all"):
		return "Machine=all is disabled using the API"
	case !slices.Contains(e.cfg.Machines, form.machine):
		return fmt.Sprintf("Machine '%s' does not exist. Available: %s", form.machine, strings.Join(e.cfg.Machines, ", "))
	}
	return ""
}

// checkFile returns the per-file "errors" item refusing the upload, or nil.
func (e *emulator) checkFile(form submitForm, up *upload) any {
	if up.size == 0 {
		return map[string]any{up.name: "You uploaded an empty file."}
	}
	if up.size > e.cfg.MaxSampleSize {
		return map[string]any{up.name: fmt.Sprintf(
			"Uploaded file exceeds the maximum allowed size in conf/web.conf. Sample size is: %d Allowed size is: %d",
			up.size, e.cfg.MaxSampleSize)}
	}
	if form.tags != "" {
		tags := strings.Split(form.tags, ",")
		for i := range tags {
			tags[i] = strings.TrimSpace(tags[i])
		}
		bad := slices.Contains(tags, "x86") && slices.Contains(tags, "x64")
		for _, t := range tags {
			bad = bad || !slices.Contains(e.cfg.MachineTags, t)
		}
		if bad {
			return map[string]any{up.name: map[string]any{"error": "Check Tags help, you have introduced incorrect tag(s)."}}
		}
	}
	if form.unique || e.cfg.Unique {
		e.mu.Lock()
		s := e.bySHA256[up.sha256]
		dup := s != nil && e.now().Sub(s.firstSeen) < 24*time.Hour
		e.mu.Unlock()
		if dup {
			return map[string]any{up.name: "Duplicated file, disable unique option on submit or in conf/web.conf to force submission"}
		}
	}
	return nil
}

// addTasks registers the sample and creates its tasks: one, or one per child
// when the verdict says the upload is an archive demuxed on the host.
func (e *emulator) addTasks(form submitForm, up *upload) []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	s := e.sampleLocked(up.sha256, func(s *sample) {
		s.md5, s.sha1, s.sha512, s.crc, s.size, s.fileType = up.md5, up.sha1, up.sha512, up.crc, up.size, fileType(up.head)
	})
	e.submissions[up.sha256]++
	v := e.verdicts[up.sha256]
	if _, ok := e.verdicts[up.sha256]; !ok {
		v = e.cfg.Default
	}
	if len(v.Children) == 0 {
		return []int{e.newTaskLocked(s, nil, up.name, form, now)}
	}
	var ids []int
	for i, c := range v.Children {
		c = strings.ToLower(c)
		child := e.sampleLocked(c, func(cs *sample) {
			cs.size, cs.fileType = 1024, "data"
			cs.md5, cs.sha1, cs.sha512 = pseudoHash(c, 32), pseudoHash(c, 40), pseudoHash(c, 128)
			cs.crc = strings.ToUpper(pseudoHash(c, 8))
		})
		child.parent = s.id
		ids = append(ids, e.newTaskLocked(child, s, fmt.Sprintf("member%d.bin", i+1), form, now))
	}
	return ids
}

// pseudoHash derives a stable fake hash of length n for a child sample whose
// bytes the emulator never saw.
func pseudoHash(seed string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		sum := sha512.Sum512([]byte(seed + strconv.Itoa(i)))
		b.WriteString(hex.EncodeToString(sum[:]))
	}
	return b.String()[:n]
}

func (e *emulator) sampleLocked(sha string, init func(*sample)) *sample {
	if s := e.bySHA256[sha]; s != nil {
		return s
	}
	s := &sample{id: e.nextSample, sha256: sha, firstSeen: e.now()}
	e.nextSample++
	init(s)
	e.samples[s.id] = s
	e.bySHA256[sha] = s
	e.byMD5[s.md5] = s
	e.bySHA1[s.sha1] = s
	return s
}

func (e *emulator) newTaskLocked(s, parent *sample, target string, form submitForm, now time.Time) int {
	v, ok := e.verdicts[s.sha256]
	if !ok {
		v = e.cfg.Default
	}
	n := e.seen[s.sha256]
	e.seen[s.sha256]++
	t := &task{id: e.nextTask, sample: s, parent: parent, target: target, form: form, added: now,
		delay: time.Duration(v.Delay), fate: "reported", never: v.NeverFinish,
		recover: v.Recover && n == 0, verdict: v}
	if t.delay == 0 {
		t.delay = e.k.delay
	}
	if v.Fail != "" && (v.FailTimes == 0 || n < v.FailTimes) {
		t.fate = v.Fail
	}
	if v.Password != "" && getOptions(form.options)["password"] != v.Password {
		t.locked = true
	}
	e.nextTask++
	e.tasks[t.id] = t
	return t.id
}

// statusLocked is the task's status at now: pending for the first tenth of
// its delay, running until six tenths, completed until the end, then its
// fate. A task set to recover goes "recovered" half-way and hands over to a
// new task.
func (e *emulator) statusLocked(t *task, now time.Time) string {
	if t.recovery != 0 {
		return "recovered"
	}
	el := now.Sub(t.added)
	if t.recover && el >= t.delay/2 {
		t.recovery = e.newTaskLocked(t.sample, t.parent, t.target, t.form, now)
		e.tasks[t.recovery].recover = false
		return "recovered"
	}
	switch {
	case el < t.delay/10:
		return "pending"
	case t.never || el < t.delay*6/10:
		return "running"
	case el < t.delay:
		return "completed"
	}
	return t.fate
}

// followLocked follows "recovered" tasks to the task that replaced them, as
// tasks/view and tasks/get/report do.
func (e *emulator) followLocked(t *task, now time.Time) *task {
	for i := 0; i < 16 && e.statusLocked(t, now) == "recovered"; i++ {
		t = e.tasks[t.recovery]
	}
	return t
}

func taskID(m []string) int {
	id, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return id
}

// taskStatus serves tasks/status/<id>/ (cape-api.md §6.1).
func (e *emulator) taskStatus(w http.ResponseWriter, r *http.Request, m []string) {
	if e.disabled("tasks/status") {
		e.fail(w, "Task status API is disabled")
		return
	}
	e.mu.Lock()
	t := e.tasks[taskID(m)]
	st := ""
	if t != nil {
		st = e.statusLocked(t, e.now())
	}
	e.mu.Unlock()
	if t == nil {
		e.fail(w, "Task does not exist")
		return
	}
	e.writeJSON(w, http.StatusOK, map[string]any{"error": false, "data": st})
}

// taskView serves tasks/view/<id>/ (cape-api.md §6.2).
func (e *emulator) taskView(w http.ResponseWriter, r *http.Request, m []string) {
	if e.disabled("tasks/view") {
		e.fail(w, "Task View API is Disabled")
		return
	}
	e.mu.Lock()
	var data map[string]any
	if t := e.tasks[taskID(m)]; t != nil {
		now := e.now()
		data = e.taskDictLocked(e.followLocked(t, now), now)
	}
	e.mu.Unlock()
	if data == nil {
		e.fail(w, "Task not found in database")
		return
	}
	e.writeJSON(w, http.StatusOK, map[string]any{"error": false, "data": data})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// taskDictLocked is Task.to_dict() built from the task fixture.
func (e *emulator) taskDictLocked(t *task, now time.Time) map[string]any {
	d := cloneObject(e.fx.task)
	st := e.statusLocked(t, now)
	d["id"], d["target"], d["status"] = t.id, t.target, st
	d["timeout"], d["priority"], d["package"] = t.form.timeout, t.form.priority, t.form.pkg
	d["options"], d["custom"], d["memory"] = t.form.options, t.form.custom, t.form.memory
	d["enforce_timeout"], d["route"], d["tlp"] = t.form.enforceTimeout, nullable(t.form.route), nullable(t.form.tlp)
	d["tags_tasks"], d["cape"] = nullable(t.form.tagsTasks), nullable(t.form.cape)
	if t.form.platform != "" {
		d["platform"] = t.form.platform
	}
	if t.form.clock != "" {
		d["clock"] = t.form.clock
	}
	if t.recovery != 0 {
		d["custom"] = fmt.Sprintf("Recovery_%d", t.recovery)
	}
	d["added_on"] = t.added.UTC().Format(timeLayout)
	tags := []any{}
	for _, tag := range strings.Split(t.form.tags, ",") {
		if tag = strings.TrimSpace(tag); tag != "" {
			tags = append(tags, tag)
		}
	}
	d["tags"] = tags
	d["sample_id"] = t.sample.id
	d["sample"] = e.sampleDict(t.sample)
	if st != "pending" {
		started := t.added.Add(t.delay / 10).UTC().Format(timeLayout)
		d["started_on"] = started
		d["machine"] = e.cfg.Machines[0]
		g := cloneObject(e.fx.guest)
		g["task_id"], g["started_on"], g["name"], g["label"] = t.id, started, e.cfg.Machines[0], e.cfg.Machines[0]
		if st != "running" {
			g["status"] = "stopped"
			g["shutdown_on"] = t.added.Add(t.delay * 6 / 10).UTC().Format(timeLayout)
		}
		d["guest"] = g
	}
	if st == "reported" {
		d["completed_on"] = t.added.Add(t.delay).UTC().Format(timeLayout)
	}
	if strings.HasPrefix(st, "failed_") {
		d["errors"] = []any{"capetest: analysis ended in " + st}
	}
	return d
}

func (e *emulator) sampleDict(s *sample) map[string]any {
	d := cloneObject(e.fx.sample)
	d["id"], d["file_size"], d["file_type"] = s.id, s.size, s.fileType
	d["md5"], d["crc32"], d["sha1"], d["sha256"], d["sha512"] = s.md5, s.crc, s.sha1, s.sha256, s.sha512
	return d
}

// reportFormats are the formats tasks_report knows (cape-api.md §7.1).
var reportFormats = []string{"json", "litereport", "html", "htmlsummary", "pdf", "maec", "maec5",
	"metadata", "protobuf", "parti", "all", "dropped", "dist", "lite"}

// taskReport serves tasks/get/report/<id>/[<format>/[<zip>/]] (cape-api.md §7.1).
func (e *emulator) taskReport(w http.ResponseWriter, r *http.Request, m []string) {
	if e.disabled("tasks/get/report") {
		e.fail(w, "Task Report API is Disabled")
		return
	}
	if e.cfg.ReportsForbidden {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		w.Write(e.fx.forbiddenReport)
		return
	}
	format := strings.ToLower(m[2])
	if format == "" {
		format = "json"
	}
	e.mu.Lock()
	now := e.now()
	t := e.tasks[taskID(m)]
	msg := ""
	switch {
	case t == nil:
		msg = "Task does not exist"
	default:
		t = e.followLocked(t, now)
		switch st := e.statusLocked(t, now); {
		case strings.HasPrefix(st, "failed_"):
			msg = "Task failed"
		case st != "reported":
			msg = "Task is still being analyzed"
		case t.form.tlp == "red":
			msg = "Task has a TLP of RED"
		}
	}
	var body []byte
	if msg == "" && slices.Contains(reportFormats, format) && format == "json" {
		body = e.reportLocked(t)
	}
	e.mu.Unlock()
	switch {
	case msg != "":
		e.fail(w, msg)
	case !slices.Contains(reportFormats, format):
		e.writeJSON(w, http.StatusBadRequest, map[string]any{"error": true, "error_value": "Report format not found: " + format})
	case format != "json":
		e.fail(w, "Reports directory does not exist")
	case m[3] != "":
		e.writeZip(w, t.id, body)
	default:
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%d_report.json", t.id))
		e.writeBody(w, http.StatusOK, "application/json; charset=UTF-8", body)
	}
}

func (e *emulator) writeZip(w http.ResponseWriter, id int, report []byte) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, err := zw.Create("report.json")
	if err == nil {
		_, err = f.Write(report)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%d_json.zip", id))
	e.writeBody(w, http.StatusOK, "application/zip", buf.Bytes())
}

// reportLocked builds (once) the report.json of a reported task from the
// verdict's profile fixture, as jsondump writes it (indent 4).
func (e *emulator) reportLocked(t *task) []byte {
	if t.report != nil {
		return t.report
	}
	v := t.verdict
	profile := v.Profile
	if t.locked || profile == "" {
		profile = "clean"
	}
	base, ok := e.fx.reports[profile]
	if !ok {
		base = e.fx.reports["clean"]
	}
	rep := cloneObject(base)
	e.fillReportInfo(rep, t)
	if !t.locked {
		applyVerdict(rep, v, e.fx, t.sample.sha256)
	}
	if v.NoMalscore {
		delete(rep, "malscore")
	}
	b, err := json.MarshalIndent(rep, "", "    ")
	if err != nil {
		b = []byte(`{}`)
	}
	t.report = b
	return b
}

func (e *emulator) fillReportInfo(rep map[string]any, t *task) {
	info := object(rep, "info")
	info["id"] = t.id
	info["package"] = t.form.pkg
	info["custom"] = t.form.custom
	info["started"] = t.added.Add(t.delay / 10).UTC().Format(timeLayout)
	info["ended"] = t.added.Add(t.delay * 6 / 10).UTC().Format(timeLayout)
	info["duration"] = int((t.delay/2 + time.Second - 1) / time.Second)
	opts := map[string]any{}
	for k, v := range getOptions(t.form.options) {
		opts[k] = v
	}
	info["options"] = opts
	if t.parent != nil {
		info["parent_sample"] = e.sampleDict(t.parent)
	}
	file := object(object(rep, "target"), "file")
	s := t.sample
	file["name"], file["size"], file["type"] = t.target, s.size, s.fileType
	file["md5"], file["sha1"], file["sha256"], file["sha512"], file["crc32"] = s.md5, s.sha1, s.sha256, s.sha512, s.crc
	file["path"] = "/opt/CAPEv2/storage/binaries/" + s.sha256
}

// applyVerdict overrides the fixture's score, signatures and detections.
func applyVerdict(rep map[string]any, v Verdict, fx *fixtures, sha string) {
	if v.Malscore != nil {
		rep["malscore"] = *v.Malscore
	}
	switch v.Malstatus {
	case "":
	case "null":
		rep["malstatus"] = nil
	default:
		rep["malstatus"] = v.Malstatus
	}
	if v.Signatures != nil {
		sigs := make([]any, len(v.Signatures))
		for i, n := range v.Signatures {
			sigs[i] = fx.signature(n)
		}
		rep["signatures"] = sigs
	}
	if v.Families != nil {
		dets := make([]any, len(v.Families))
		for i, f := range v.Families {
			dets[i] = map[string]any{"family": f, "details": []any{map[string]any{"Yara": sha}}}
		}
		rep["detections"] = dets
	}
	// The "family" fixture's detection names its own sample.
	if dets, ok := rep["detections"].([]any); ok {
		for _, d := range dets {
			dm, _ := d.(map[string]any)
			details, _ := dm["details"].([]any)
			for _, x := range details {
				if xm, ok := x.(map[string]any); ok && xm["Yara"] == "SHA256" {
					xm["Yara"] = sha
				}
			}
		}
	}
}

// hashArg picks the (kind, value) pair a hash route matched.
func hashArg(m []string) (string, string) {
	for i := 1; i+1 < len(m); i += 2 {
		if m[i] != "" {
			return m[i], strings.ToLower(m[i+1])
		}
	}
	return "", ""
}

func (e *emulator) sampleByLocked(kind, v string) *sample {
	switch kind {
	case "md5":
		return e.byMD5[v]
	case "sha1":
		return e.bySHA1[v]
	case "sha256":
		return e.bySHA256[v]
	case "id":
		id, _ := strconv.Atoi(v)
		return e.samples[id]
	}
	return nil
}

// filesView serves files/view/{md5,sha1,sha256,id}/<v>/ (cape-api.md §8.1).
func (e *emulator) filesView(w http.ResponseWriter, r *http.Request, m []string) {
	kind, v := hashArg(m)
	if e.disabled("files/view") {
		e.fail(w, fmt.Sprintf("File View by %s is Disabled", strings.ToUpper(kind)))
		return
	}
	e.mu.Lock()
	var data map[string]any
	if s := e.sampleByLocked(kind, v); s != nil {
		data = e.sampleDict(s)
	}
	e.mu.Unlock()
	if data == nil {
		e.fail(w, "Sample not found in database")
		return
	}
	e.writeJSON(w, http.StatusOK, map[string]any{"error": []any{}, "data": data})
}

// taskSearch serves tasks/search/{md5,sha1,sha256}/<h>/ (cape-api.md §8.2):
// the tasks of the sample, or of its children when it was a demuxed archive.
func (e *emulator) taskSearch(w http.ResponseWriter, r *http.Request, m []string) {
	kind, v := hashArg(m)
	if e.disabled("tasks/search") {
		e.fail(w, fmt.Sprintf("Task Search by %s is Disabled", strings.ToUpper(kind)))
		return
	}
	e.mu.Lock()
	now := e.now()
	var data []any
	if s := e.sampleByLocked(kind, v); s != nil {
		ids := map[int]bool{s.id: true}
		var children []int
		for id, c := range e.samples {
			if c.parent == s.id {
				children = append(children, id)
			}
		}
		if len(children) > 0 {
			ids = map[int]bool{}
			for _, id := range children {
				ids[id] = true
			}
		}
		var tids []int
		for id, t := range e.tasks {
			if ids[t.sample.id] {
				tids = append(tids, id)
			}
		}
		slices.Sort(tids)
		for _, id := range tids {
			data = append(data, e.taskDictLocked(e.tasks[id], now))
		}
	}
	e.mu.Unlock()
	if len(data) == 0 {
		e.writeJSON(w, http.StatusOK, map[string]any{"data": []any{}, "error": false})
		return
	}
	e.writeJSON(w, http.StatusOK, map[string]any{"error": []any{}, "data": data})
}
