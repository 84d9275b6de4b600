package archive

import (
	"bytes"
	"fmt"
	"testing"
)

func rarFiles() []rarFile {
	return []rarFile{
		{name: "docs", dir: true},
		{name: "docs/invoice.txt", data: []byte("please pay\n")},
		{name: "payload.exe", data: bytes.Repeat([]byte("MZ\x90\x00payload"), 3000)},
		{name: "../../etc/passwd", data: []byte("root:x:0:0\n")},
	}
}

func TestRAR(t *testing.T) {
	const pw = "パスワード"
	for _, c := range []struct {
		name      string
		data      []byte
		encrypted bool
		headers   bool
	}{
		{"rar5", buildRAR5(t, rarFiles(), rar5Opts{}), false, false},
		{"rar5-solid", buildRAR5(t, rarFiles(), rar5Opts{solid: true}), false, false},
		{"rar5-password", buildRAR5(t, rarFiles(), rar5Opts{password: pw, kdfLog: 10}), true, false},
		{"rar5-hp", buildRAR5(t, rarFiles(), rar5Opts{password: pw, encryptHeaders: true, kdfLog: 10}), true, true},
		{"rar4", buildRAR4(t, rarFiles(), false), false, false},
		{"rar4-solid", buildRAR4(t, rarFiles(), true), false, false},
		{"rar4-password", buildRAR4Enc(t, rarFiles(), false, pw, false), true, false},
		{"rar4-hp", buildRAR4Enc(t, rarFiles(), false, pw, true), true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Sniff(bytes.NewReader(c.data), int64(len(c.data))); got != RAR {
				t.Errorf("Sniff = %q", got)
			}
			w := walkBytes(t, RAR, c.data, Options{Passwords: []Password{{"nope", "body"}, {pw, "thread"}}})
			if w.err != nil || len(w.res.Problems) > 0 || len(w.res.Locked) > 0 {
				t.Fatalf("err %v problems %v locked %v", w.err, w.res.Problems, w.res.Locked)
			}
			for _, f := range rarFiles() {
				e, ok := w.entry(f.name)
				if !ok || e.Dir != f.dir {
					t.Errorf("%q: entry %+v, found %v", f.name, e, ok)
					continue
				}
				if f.dir {
					continue
				}
				if !bytes.Equal(w.content[f.name], f.data) {
					t.Errorf("%q: content %q, want %q", f.name, clip(string(w.content[f.name]), 40), clip(string(f.data), 40))
				}
				if e.Encrypted != c.encrypted || e.Decrypted != c.encrypted || (c.encrypted && e.PasswordSource != "thread") {
					t.Errorf("%q: entry %+v", f.name, e)
				}
			}
			if w.res.HeadersEncrypted != c.headers || (c.headers && w.res.PasswordSource != "thread") {
				t.Errorf("result %+v", w.res)
			}
			if !c.encrypted {
				return
			}
			var many []Password
			for i := range 30 {
				many = append(many, Password{fmt.Sprintf("guess%d", i), "body"})
			}
			for _, cands := range [][]Password{nil, many} {
				w = walkBytes(t, RAR, c.data, Options{Passwords: cands, Limits: Limits{MaxAttempts: 4}})
				if len(w.content) != 0 || w.err != nil {
					t.Errorf("%d candidates: content %d err %v", len(cands), len(w.content), w.err)
				}
				if c.headers {
					if w.res.Entries != 0 || !w.res.HeadersEncrypted {
						t.Errorf("%d candidates: %+v", len(cands), w.res)
					}
				} else if len(w.res.Locked) != 3 {
					t.Errorf("%d candidates: locked %q", len(cands), w.res.Locked)
				}
			}
		})
	}
}
