package attach

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

// need skips a test when a tool is missing, or fails it when
// MAILGUARD_E2E_STRICT=1.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MAILGUARD_E2E_STRICT") == "1" {
				t.Fatalf("required tool %q not installed", tool)
			}
			t.Skipf("tool %q not installed", tool)
		}
	}
}

// part is one MIME part for mkMessage.
type part struct {
	header string // full header lines, "\r\n"-terminated
	body   string
}

// attachment builds a base64 attachment part.
func attachment(name, ctype string, data []byte) part {
	return part{
		header: fmt.Sprintf("Content-Type: %s; name=\"%s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"%s\"\r\n", ctype, name, name),
		body:   wrap76(base64.StdEncoding.EncodeToString(data)),
	}
}

func textPart(body string) part {
	return part{header: "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n", body: body}
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76])
		b.WriteString("\r\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

// mkMessage builds a multipart/mixed message.
func mkMessage(subject string, parts ...part) []byte {
	var b bytes.Buffer
	b.WriteString("From: Sender <sender@example.org>\r\nTo: rcpt@corp.example\r\n")
	b.WriteString("Subject: " + subject + "\r\nMessage-ID: <m1@example.org>\r\nDate: Mon, 2 Jun 2025 10:00:00 +0900\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUNDARY\"\r\n\r\nPreamble.\r\n")
	for _, p := range parts {
		b.WriteString("--BOUNDARY\r\n" + p.header + "\r\n" + p.body + "\r\n")
	}
	b.WriteString("--BOUNDARY--\r\n")
	return b.Bytes()
}

// walk runs Walk over raw and closes the result at the end of the test.
func walk(t testing.TB, raw []byte, opt Options) *Result {
	t.Helper()
	if opt.TempDir == "" {
		opt.TempDir = t.TempDir()
	}
	res, err := Walk(context.Background(), bytes.NewReader(raw), int64(len(raw)), opt)
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	t.Cleanup(func() {
		if err := res.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return res
}

// file returns the file whose path is p.
func file(t testing.TB, res *Result, p string) *File {
	t.Helper()
	for _, f := range res.Files {
		if f.Path == p {
			return f
		}
	}
	var paths []string
	for _, f := range res.Files {
		paths = append(paths, f.Path)
	}
	t.Fatalf("no file %q; have %q", p, paths)
	return nil
}

func hasTag(fs []reason.Finding, tag reason.Tag) bool {
	for _, f := range fs {
		if f.Tag == tag {
			return true
		}
	}
	return false
}

func wantTag(t testing.TB, fs []reason.Finding, tag reason.Tag) {
	t.Helper()
	if !hasTag(fs, tag) {
		t.Errorf("no %s finding in %+v", tag, fs)
	}
}

func wantNoTag(t testing.TB, fs []reason.Finding, tag reason.Tag) {
	t.Helper()
	if hasTag(fs, tag) {
		t.Errorf("unexpected %s finding in %+v", tag, fs)
	}
}

func content(t testing.TB, f *File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// minimalPE is a tiny but well-formed PE header, enough for type sniffing.
func minimalPE() []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	b[0x3c] = 0x80
	copy(b[0x80:], "PE\x00\x00")
	b[0x84], b[0x85] = 0x4c, 0x01 // i386
	b[0x94] = 0xe0                // SizeOfOptionalHeader
	b[0x96] = 0x02                // characteristics: executable
	b[0x98], b[0x99] = 0x0b, 0x01 // PE32 magic
	return b
}
