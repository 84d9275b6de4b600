package cape

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// bigReport builds a report.json of about n bytes: the "family" fixture with
// a large behavior section and large signature data, as real reports have.
func bigReport(tb testing.TB, n int) []byte {
	tb.Helper()
	b, err := os.ReadFile("../capetest/testdata/report_family.json")
	if err != nil {
		tb.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		tb.Fatal(err)
	}
	call := `{"timestamp": "2026-08-22 10:00:06,001", "thread_id": "2204", "caller": "0x00401000", ` +
		`"category": "filesystem", "api": "NtCreateFile", "status": true, "return": "0x00000000", ` +
		`"arguments": [{"name": "FileName", "value": "C:\\Users\\user\\AppData\\Local\\Temp\\a \"b\".tmp"}]}`
	calls := func(n int) json.RawMessage {
		return json.RawMessage("[" + strings.Repeat(call+",", n) + call + "]")
	}
	count := n / len(call)
	rep["behavior"] = map[string]any{"processes": []any{map[string]any{"process_id": 1, "calls": calls(count)}}}
	sigs := rep["signatures"].([]any)
	sigs[0].(map[string]any)["data"] = calls(count / 10)
	out, err := json.Marshal(rep)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// BenchmarkParseReport measures the streaming report parser.
func BenchmarkParseReport(b *testing.B) {
	for _, size := range []int{1 << 20, 32 << 20} {
		data := bigReport(b, size)
		b.Run(fmt.Sprintf("%dMB", len(data)>>20), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				rep, err := ParseReport(bytes.NewReader(data))
				if err != nil || rep.Malscore != 10 {
					b.Fatal(rep, err)
				}
			}
		})
	}
}

func TestParseBigReport(t *testing.T) {
	rep, err := ParseReport(bytes.NewReader(bigReport(t, 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Malscore != 10 || rep.Malstatus != "Malicious" || len(rep.Signatures) != 2 || len(rep.Detections) != 1 ||
		rep.Detections[0].DetectedBy[0] != "Yara" || rep.Signatures[1].Families[0] != "Emotet" {
		t.Errorf("report = %+v", rep)
	}
}
