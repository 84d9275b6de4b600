package tests

import (
	"encoding/base64"
	"mime"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// yaraEICAR is the EICAR test file, which rules/eicar.yar matches.
const yaraEICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}` + `$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// yaraPolicy loads the repository's rules/*.yar.
func yaraPolicy(t *testing.T) string {
	t.Helper()
	rules, err := filepath.Abs("../rules")
	if err != nil {
		t.Fatal(err)
	}
	return "yara {\n  rules = [\"" + rules + "/*.yar\"]\n}\n"
}

// yaraTool runs an archiver in dir.
func yaraTool(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// yaraMail is a message from Mallory with a UTF-8 text part and one
// base64 attachment (a non-ASCII name is RFC 2231 encoded).
func yaraMail(subject, msgID, text, name string, data []byte) string {
	var b strings.Builder
	b.WriteString("From: Mallory Partner <mallory@partner.example>\r\nTo: Bob <bob@corp.example>\r\n")
	b.WriteString("Subject: " + mime.BEncoding.Encode("UTF-8", subject) + "\r\nDate: Mon, 23 Nov 2026 10:00:00 +0900\r\n")
	b.WriteString("Message-ID: <" + msgID + ">\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_yara\"\r\n\r\n")
	b.WriteString("--=_yara\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text + "\r\n")
	b.WriteString("--=_yara\r\nContent-Type: " + mime.FormatMediaType("application/zip", map[string]string{"name": name}) + "\r\n")
	b.WriteString("Content-Disposition: " + mime.FormatMediaType("attachment", map[string]string{"filename": name}) + "\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--=_yara--\r\n")
	return b.String()
}

// yaraFile returns the file with that path from a decision's files.
func yaraFile(t *testing.T, doc map[string]any, path string) map[string]any {
	t.Helper()
	files, _ := doc["files"].([]any)
	var paths []string
	for _, f := range files {
		m, _ := f.(map[string]any)
		if m["path"] == path {
			return m
		}
		paths = append(paths, m["path"].(string))
	}
	t.Fatalf("no file %q in the decision; files: %q", path, paths)
	return nil
}

// yaraFindings returns the tags of a decision file's findings.
func yaraFindings(f map[string]any) []string {
	var tags []string
	fs, _ := f["findings"].([]any)
	for _, x := range fs {
		if m, ok := x.(map[string]any); ok {
			tags = append(tags, m["tag"].(string))
		}
	}
	return tags
}

// yaraQuarantined sends msg, requires it quarantined with malware_yara,
// and returns its decision; nothing reaches the maildir.
func yaraQuarantined(t *testing.T, g *gateway, msg string) map[string]any {
	t.Helper()
	id := sendMessage(t, g.addr, msg)
	e := g.waitState(t, id, "quarantined", 30*time.Second)
	if !contains(e.Reasons, "malware_yara") {
		t.Errorf("quarantined with reasons %v, want malware_yara", e.Reasons)
	}
	doc := g.decision(t, id)
	if doc["action"] != "quarantine" || doc["state"] != "quarantined" {
		t.Errorf("decision action %v state %v", doc["action"], doc["state"])
	}
	if files := maildirFiles(filepath.Join(g.dir, "var", "maildir")); len(files) > 0 {
		t.Errorf("%d messages delivered to the maildir", len(files))
	}
	return doc
}

// TestYARAThreeArchivesDeep: the EICAR file inside a zip inside a 7z
// inside a zip is found by YARA, through SMTP, and the quarantine shows
// the file's full path in the tree.
func TestYARAThreeArchivesDeep(t *testing.T) {
	need(t, "swaks", "zip", "7z")
	g := startGateway(t, policyVars{Extra: yaraPolicy(t)})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "readme.txt"), []byte(yaraEICAR), 0o644); err != nil {
		t.Fatal(err)
	}
	yaraTool(t, dir, "zip", "-q", "level3.zip", "readme.txt")
	yaraTool(t, dir, "7z", "a", "-bso0", "-t7z", "level2.7z", "level3.zip")
	yaraTool(t, dir, "zip", "-q", "level1.zip", "level2.7z")
	data, err := os.ReadFile(filepath.Join(dir, "level1.zip"))
	if err != nil {
		t.Fatal(err)
	}
	doc := yaraQuarantined(t, g, yaraMail("documents", "deep-1@partner.example", "The documents are attached.", "level1.zip", data))
	const path = "level1.zip/level2.7z/level3.zip/readme.txt"
	f := yaraFile(t, doc, path)
	if f["depth"] != 3.0 || !contains(yaraFindings(f), "malware_yara") {
		t.Errorf("%s: depth %v findings %v", path, f["depth"], yaraFindings(f))
	}
	for _, outer := range []string{"level1.zip", "level1.zip/level2.7z", "level1.zip/level2.7z/level3.zip"} {
		if contains(yaraFindings(yaraFile(t, doc, outer)), "malware_yara") {
			t.Errorf("%s itself matched: the match belongs to the inner file", outer)
		}
	}
	if doc["complete"] != true {
		t.Errorf("inspection incomplete: %v", doc["errors"])
	}
}

// TestYARAInBodyPasswordAES: an AES-256 zip whose password is in the body,
// Japanese style with a full-width colon, is opened with it; YARA finds
// EICAR inside, and the quarantine shows password_source "body".
func TestYARAInBodyPasswordAES(t *testing.T) {
	need(t, "swaks", "7z")
	g := startGateway(t, policyVars{Extra: yaraPolicy(t)})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "請求書.txt"), []byte(yaraEICAR), 0o644); err != nil {
		t.Fatal(err)
	}
	const password = "Rk8#vQ2m"
	yaraTool(t, dir, "7z", "a", "-bso0", "-tzip", "-mem=AES256", "-p"+password, "invoice.zip", "請求書.txt")
	data, err := os.ReadFile(filepath.Join(dir, "invoice.zip"))
	if err != nil {
		t.Fatal(err)
	}
	body := "お世話になっております。\r\n請求書を送付いたします。\r\n\r\n解凍パスワード：" + password + "\r\n\r\nよろしくお願いいたします。"
	doc := yaraQuarantined(t, g, yaraMail("請求書送付のお知らせ", "aes-1@partner.example", body, "請求書.zip", data))
	arc := yaraFile(t, doc, "請求書.zip")
	if arc["encrypted"] != true || arc["decrypted"] != true || arc["password_source"] != "body" {
		t.Errorf("archive: encrypted %v decrypted %v password_source %v", arc["encrypted"], arc["decrypted"], arc["password_source"])
	}
	f := yaraFile(t, doc, "請求書.zip/請求書.txt")
	if f["password_source"] != "body" || f["decrypted"] != true || !contains(yaraFindings(f), "malware_yara") {
		t.Errorf("inner file: password_source %v decrypted %v findings %v", f["password_source"], f["decrypted"], yaraFindings(f))
	}
	reasons := anyStrings(doc["reasons"])
	if !contains(reasons, "password_found_body") || contains(reasons, "encrypted_unscannable") {
		t.Errorf("reasons %v", reasons)
	}
	// The password is a secret: not in the decision, not in the log.
	if out, _ := g.mg("quarantine", "show", "--json", doc["id"].(string)); strings.Contains(out, password) {
		t.Error("the password appears in quarantine show")
	}
	if strings.Contains(g.log.String(), password) {
		t.Error("the password appears in the log")
	}
}
