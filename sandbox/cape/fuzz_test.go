package cape

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/mailguard/mailguard/sandbox"
)

func addReportSeeds(f *testing.F) {
	paths, _ := filepath.Glob("../capetest/testdata/report_*.json")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"malscore": 11, "malstatus": "Malicious", "detections": "Emotet"}`,
		`{"malscore": -3, "signatures": [1, "x", {"name": {"a": 1}}, {"name": "ok", "severity": 1e300}]}`,
		`{"error": true, "error_value": "Task is still being analyzed"}`,
		`{"detections": [{"family": "A", "details": [{"Yara": "x"}, 3]}, "B", [1]]}`,
		`{"info": {"id": 1.5, "timeout": true}, "target": {"file": []}}`,
		`[]`, `null`, `{"a":`, `<html>`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseReport: hostile reports never panic and never exceed the caps.
func FuzzParseReport(f *testing.F) {
	addReportSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := ParseReport(bytes.NewReader(b))
		checkAgainstStdlib(t, b, rep, err)
		// Every byte a buffer boundary: the same answer.
		rep1, err1 := ParseReport(iotest.OneByteReader(bytes.NewReader(b)))
		if (err == nil) != (err1 == nil) || !reflect.DeepEqual(rep, rep1) {
			t.Fatalf("one byte at a time: %+v %v, at once: %+v %v", rep1, err1, rep, err)
		}
		if err != nil {
			var env *EnvelopeError
			if !errors.Is(err, errSyntax) && !errors.Is(err, errHTMLReport) && !errors.As(err, &env) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if rep.Malscore < 0 || rep.Malscore > 10 {
			t.Fatalf("malscore %v", rep.Malscore)
		}
		if len(rep.Signatures) > maxSignatures || len(rep.Detections) > maxDetections {
			t.Fatalf("%d signatures, %d detections", len(rep.Signatures), len(rep.Detections))
		}
		for _, s := range rep.Signatures {
			if len(s.Name) > maxText || len(s.Categories) > maxListItems || !utf8.ValidString(s.Name) {
				t.Fatalf("signature %q not bounded", s.Name)
			}
		}
		v := VerdictOf([]*Report{rep})
		if len(v.Signatures) > maxVerdictSignatures || len(v.Detections) > maxVerdictDetections {
			t.Fatalf("verdict not bounded")
		}
	})
}

var taskIDPattern = regexp.MustCompile(`^[1-9][0-9]*(,[1-9][0-9]*)*$`)

// FuzzSubmitAnswer: any tasks/create/file/ answer is a task id or a
// classified error.
func FuzzSubmitAnswer(f *testing.F) {
	for _, s := range []string{
		`{"error": [], "data": {"task_ids": [1234], "message": "Task ID 1234 has been submitted"}, "errors": [], "url": ["http://example.tld/submit/status/1234/"]}`,
		`{"error": true, "error_value": "Error adding task to database", "errors": [{"invoice.zip": "Duplicated file, disable unique option on submit or in conf/web.conf to force submission"}]}`,
		`{"error": true, "errors": "x"}`, `{"error": [], "data": {"task_ids": ["1", 2.5]}}`, `{"error":[],"data":[]}`,
		`{"error": true, "error_value": {"a": 1}, "errors": [[1], {"f": {"error": 3}}]}`,
	} {
		f.Add(200, []byte(s))
	}
	f.Add(404, []byte("<!doctype html><title>Not Found</title>"))
	f.Add(429, []byte(`{"detail": "Request was throttled. Expected available in 56 seconds."}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		id, err := parseSubmit("submit", &response{status: status, body: body, header: map[string][]string{}})
		if err == nil {
			if !taskIDPattern.MatchString(string(id)) {
				t.Fatalf("task id %q", id)
			}
			return
		}
		var se *sandbox.Error
		if !errors.As(err, &se) || se.Kind == "" || strings.TrimSpace(se.Error()) == "" {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

// checkAgainstStdlib compares the streaming parser with encoding/json on
// valid JSON objects: no error, and the same malscore and target sha256.
func checkAgainstStdlib(t *testing.T, b []byte, rep *Report, err error) {
	t.Helper()
	var top map[string]any
	if !json.Valid(b) || json.Unmarshal(b, &top) != nil || top == nil {
		return
	}
	if isErr, _ := top["error"].(bool); isErr {
		return
	}
	if err != nil {
		t.Fatalf("valid JSON object rejected: %v", err)
	}
	ms, isNum := top["malscore"].(float64)
	if isNum != rep.HasMalscore || (isNum && clampScore(ms) != rep.Malscore) {
		t.Fatalf("malscore: stdlib %v (%v), streaming %v (%v)", top["malscore"], isNum, rep.Malscore, rep.HasMalscore)
	}
	want := ""
	if tg, ok := top["target"].(map[string]any); ok {
		if f, ok := tg["file"].(map[string]any); ok {
			want, _ = f["sha256"].(string)
		}
	}
	if len(want) <= 128 && utf8.ValidString(want) && !strings.ContainsRune(want, utf8.RuneError) && strings.ToLower(want) != rep.SHA256 {
		t.Fatalf("target.file.sha256: stdlib %q, streaming %q", want, rep.SHA256)
	}
}

// TestSkipAcrossBufferBoundaries puts an escaped quote at every offset
// around the scanner's 64 KiB buffer edge.
func TestSkipAcrossBufferBoundaries(t *testing.T) {
	for pad := 65500; pad < 65560; pad++ {
		doc := `{"behavior": {"x": "` + strings.Repeat("a", pad) + `\"}{][\\", "y": [1, {"z": "\u00e9"}]}, "malscore": 6.5}`
		rep, err := ParseReport(strings.NewReader(doc))
		if err != nil || rep.Malscore != 6.5 {
			t.Fatalf("pad %d: %+v %v", pad, rep, err)
		}
	}
}
