package smtp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMaildirDelivery(t *testing.T) {
	dir := t.TempDir()
	md, err := NewMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rcpts := []string{"Bob@Corp.Example", `"john doe"@corp.example`, "../../etc/passwd@corp.example", ".hidden@corp.example", "böb@corp.example"}
	data := []byte("Subject: maildir\r\n\r\nline one\r\nline two\r\n")
	res := deliver(t, md, Outgoing{ID: "m", MailFrom: "alice@sender.example", Rcpts: rcpts}, data)
	for _, r := range res {
		if !r.Delivered() {
			t.Errorf("%+v", r)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if !e.IsDir() || strings.ContainsAny(e.Name(), "/\\") || e.Name() == "." || e.Name() == ".." || strings.HasPrefix(e.Name(), ".") {
			t.Errorf("unsafe mailbox name %q", e.Name())
		}
	}
	if len(names) != len(rcpts) {
		t.Fatalf("mailboxes %q, want %d", names, len(rcpts))
	}
	if _, err := os.Stat(filepath.Join(dir, "bob@corp.example", "cur")); err != nil {
		t.Errorf("Maildir layout: %v", err)
	}
	for _, rcpt := range rcpts {
		box := md.MailboxPath(rcpt)
		if filepath.Dir(box) != dir {
			t.Errorf("%s escaped to %s", rcpt, box)
		}
		files, _ := os.ReadDir(filepath.Join(box, "new"))
		tmp, _ := os.ReadDir(filepath.Join(box, "tmp"))
		if len(files) != 1 || len(tmp) != 0 {
			t.Fatalf("%s: %d in new, %d in tmp", rcpt, len(files), len(tmp))
		}
		b, err := os.ReadFile(filepath.Join(box, "new", files[0].Name()))
		if err != nil {
			t.Fatal(err)
		}
		want := "Return-Path: <alice@sender.example>\nDelivered-To: " + rcpt + "\nSubject: maildir\n\nline one\nline two\n"
		if string(b) != want {
			t.Errorf("%s: stored %q, want %q", rcpt, b, want)
		}
		if !strings.HasSuffix(files[0].Name(), "."+md.host) || strings.ContainsAny(files[0].Name(), "/:") {
			t.Errorf("file name %q", files[0].Name())
		}
	}
	// A second delivery gets a new unique name.
	deliver(t, md, Outgoing{ID: "m2", MailFrom: "", Rcpts: rcpts[:1]}, data)
	files, _ := os.ReadDir(filepath.Join(md.MailboxPath(rcpts[0]), "new"))
	if len(files) != 2 {
		t.Errorf("%d files after two deliveries", len(files))
	}
}

func TestMaildirWriteFailureIsTemporary(t *testing.T) {
	dir := t.TempDir()
	md, err := NewMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A file where the mailbox directory should be.
	if err := os.WriteFile(filepath.Join(dir, "bob@corp.example"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := deliver(t, md, Outgoing{ID: "m", MailFrom: "a@x.example", Rcpts: []string{"bob@corp.example", "carol@corp.example"}}, []byte("x\r\n"))
	if res[0].Code != 451 || res[0].Perm || res[0].Detail == "" || strings.Contains(res[0].Text, dir) {
		t.Errorf("failed write: %+v", res[0])
	}
	if !res[1].Delivered() {
		t.Errorf("other recipient: %+v", res[1])
	}
}

func TestMaildirName(t *testing.T) {
	for in, want := range map[string]string{
		"bob@corp.example":        "bob@corp.example",
		"Bob@CORP.example":        "bob@corp.example",
		"../x@y":                  "%2E.%2Fx@y",
		".x@y":                    "%2Ex@y",
		`"a b"@y`:                 "%22a%20b%22@y",
		"böb@y":                   "b%C3%B6b@y",
		"":                        "%00",
		strings.Repeat("a", 300):  strings.Repeat("a", 180) + "~",
		"a\x00b/c\\d:e@corp.test": "a%00b%2Fc%5Cd%3Ae@corp.test",
	} {
		got := maildirName(in)
		if !strings.HasPrefix(got, want) || len(got) > 200 {
			t.Errorf("maildirName(%q) = %q, want %q", in, got, want)
		}
	}
	if maildirName(strings.Repeat("a", 300)) == maildirName(strings.Repeat("a", 301)) {
		t.Error("long names collide")
	}
}

func TestQueueMaildirRoute(t *testing.T) {
	dir := t.TempDir()
	md, err := NewMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Now()}
	ob := newMemOutbox(clock.Now)
	ob.add(Outgoing{ID: "m1", Route: RouteInbound, MailFrom: "a@x.example", Rcpts: []string{"b@corp.example", "c@corp.example"}, Received: clock.Now()}, testMessage("md"))
	q := newTestQueue(ob, clock, map[Route]Transport{RouteInbound: md})
	q.RunOnce(context.Background())
	done, _, _, _ := ob.snapshot()
	if len(done["m1"]) != 2 {
		t.Fatalf("done %+v", done)
	}
}
