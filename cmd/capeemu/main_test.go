package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunServesAndTakesKnobs(t *testing.T) {
	content := []byte("MZ evil")
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])
	dir := t.TempDir()
	vf := filepath.Join(dir, "verdicts.json")
	os.WriteFile(vf, []byte(`{"*": {"profile": "clean"}, "`+strings.ToUpper(h)+`": {"profile": "malicious", "families": ["AgentTesla"]}}`), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-control", "127.0.0.1:0", "-verdicts", vf, "-tokens", "k1"}, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var api, ctl string
	for (api == "" || ctl == "") && sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[1] == "api":
			api = f[2]
		case len(f) == 3 && f[1] == "control":
			ctl = f[2]
		}
	}
	go io.Copy(io.Discard, pr)
	if api == "" || ctl == "" {
		t.Fatalf("no addresses printed (api %q control %q)", api, ctl)
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "a.exe")
	fw.Write(content)
	mw.Close()
	req, _ := http.NewRequest("POST", api+"tasks/create/file/", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Token k1")
	if r := do(t, req); !strings.Contains(r, `"task_ids":[1]`) {
		t.Fatalf("submit: %s", r)
	}
	get := func(url string) string {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Token k1")
		return do(t, req)
	}
	if r := get(api + "tasks/get/report/1/"); !strings.Contains(r, `"malscore": 8.5`) || !strings.Contains(r, "AgentTesla") {
		t.Errorf("report: %.300s", r)
	}
	post := func(path, body string) {
		resp, err := http.Post(ctl+path, "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("control %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	post("down?mode=503", "")
	resp, err := http.Get(api + "cuckoo/status/")
	if err != nil || resp.StatusCode != 503 {
		t.Errorf("down 503: %v %v", err, resp)
	}
	post("down?mode=up", "")
	post("verdict?sha256="+h, `{"profile": "family"}`)
	resp, err = http.Get(ctl + "counters")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Submissions map[string]int `json:"submissions"`
		Requests    map[string]int `json:"requests"`
	}
	json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if c.Submissions[h] != 1 || c.Requests["tasks/get/report"] != 1 {
		t.Errorf("counters %+v", c)
	}
	bad, _ := http.Post(ctl+"verdict?sha256="+h, "application/json", strings.NewReader(`{"malscroe": 1}`))
	if bad.StatusCode != 400 {
		t.Errorf("unknown verdict field accepted: %d", bad.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
}

func do(t *testing.T, req *http.Request) string {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestBadVerdictFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"typo.json":   `{"*": {"profle": "clean"}}`,
		"key.json":    `{"not-a-hash": {}}`,
		"syntax.json": `{`,
		"delay.json":  `{"*": {"delay": "soon"}}`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		if err := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-verdicts", p}, io.Discard); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if err := run(context.Background(), []string{"-nosuchflag"}, io.Discard); err == nil {
		t.Error("unknown flag accepted")
	}
}
