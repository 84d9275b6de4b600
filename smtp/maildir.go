package smtp

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Maildir is a Transport that stores each recipient's copy in a Maildir
// (https://cr.yp.to/proto/maildir.html) of its own:
//
//	<dir>/<address>/{tmp,new,cur}/<unique name>
//
// <address> is the recipient, lower-cased, with every byte outside
// [a-z0-9._+=@-] written as %XX (so "../x" or "a/b" cannot leave dir and a
// leading dot is %2E); names over 200 bytes are cut and end in a hash. A
// copy starts with Return-Path and Delivered-To, is stored with LF line
// ends (the Maildir convention), is written to tmp, fsynced, renamed into
// new, and the directory is fsynced before the recipient counts as
// delivered.
type Maildir struct {
	dir  string
	host string
	pid  int
	seq  atomic.Uint64
}

var _ Transport = (*Maildir)(nil)

// NewMaildir returns a Maildir transport rooted at dir (created if needed).
func NewMaildir(dir string) (*Maildir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("smtp: maildir: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	// Maildir: '/' and ':' in the host part are written as octal escapes.
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	return &Maildir{dir: dir, host: host, pid: os.Getpid()}, nil
}

// Deliver writes one copy per recipient. The first copy reads r; the others
// reopen the message.
func (md *Maildir) Deliver(ctx context.Context, m Outgoing, r io.Reader) []RcptResult {
	out := make([]RcptResult, 0, len(m.Rcpts))
	for i, rcpt := range m.Rcpts {
		if ctx.Err() != nil {
			out = append(out, tempResult(rcpt, 451, [3]int{4, 3, 0}, "delivery interrupted", ctx.Err().Error()))
			continue
		}
		src := r
		if i > 0 {
			f, err := m.Open()
			if err != nil {
				out = append(out, tempResult(rcpt, 451, [3]int{4, 3, 0}, "message unavailable", err.Error()))
				continue
			}
			src = f
			defer f.Close()
		}
		if err := md.store(m.MailFrom, rcpt, src); err != nil {
			out = append(out, tempResult(rcpt, 451, [3]int{4, 3, 0}, "local mailbox write failed", err.Error()))
			continue
		}
		out = append(out, RcptResult{Rcpt: rcpt, Code: 250, Enhanced: [3]int{2, 0, 0}, Text: "delivered to maildir"})
	}
	return out
}

// MailboxPath returns the Maildir directory of a recipient.
func (md *Maildir) MailboxPath(rcpt string) string {
	return filepath.Join(md.dir, maildirName(rcpt))
}

func (md *Maildir) store(from, rcpt string, body io.Reader) error {
	box := md.MailboxPath(rcpt)
	if err := ensureMaildir(box); err != nil {
		return err
	}
	name := md.uniqueName()
	tmp := filepath.Join(box, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := writeCopy(f, from, rcpt, body); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp) // the copy is incomplete; nothing points at it
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(box, "new", name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Join(box, "new"))
}

func writeCopy(f *os.File, from, rcpt string, body io.Reader) error {
	bw := bufio.NewWriterSize(f, 64<<10)
	fmt.Fprintf(bw, "Return-Path: <%s>\nDelivered-To: %s\n", oneLine(from, 1000), oneLine(rcpt, 1000))
	lw := &lfWriter{w: bw}
	if _, err := io.Copy(lw, body); err != nil {
		return err
	}
	if err := lw.flush(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// ensureMaildir creates box/{tmp,new,cur}; a new directory is made durable
// by syncing its parent.
func ensureMaildir(box string) error {
	if _, err := os.Stat(filepath.Join(box, "new")); err == nil {
		return nil
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(box, sub), 0o700); err != nil {
			return err
		}
	}
	if err := syncDir(box); err != nil {
		return err
	}
	return syncDir(filepath.Dir(box))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// uniqueName follows the Maildir convention time.MusecPpidQseqRrand.host.
func (md *Maildir) uniqueName() string {
	now := time.Now()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand does not fail on supported platforms
	return fmt.Sprintf("%d.M%dP%dQ%dR%s.%s", now.Unix(), now.Nanosecond()/1000, md.pid, md.seq.Add(1), hex.EncodeToString(rnd[:]), md.host)
}

// maildirName turns an address into one safe path component.
func maildirName(addr string) string {
	var b strings.Builder
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		safe := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("._+=@-", c) >= 0
		if !safe || (i == 0 && c == '.') {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	name := b.String()
	if name == "" {
		name = "%00"
	}
	if len(name) > 200 {
		sum := sha256.Sum256([]byte(addr))
		name = name[:180] + "~" + hex.EncodeToString(sum[:8])
	}
	return name
}

// lfWriter turns CRLF into LF.
type lfWriter struct {
	w  io.Writer
	cr bool // a CR is held back
}

// Write implements io.Writer.
func (l *lfWriter) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+1)
	for _, b := range p {
		if l.cr {
			l.cr = false
			if b != '\n' {
				out = append(out, '\r')
			}
		}
		if b == '\r' {
			l.cr = true
			continue
		}
		out = append(out, b)
	}
	if _, err := l.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes a CR held back at the very end.
func (l *lfWriter) flush() error {
	if !l.cr {
		return nil
	}
	l.cr = false
	_, err := l.w.Write([]byte{'\r'})
	return err
}
