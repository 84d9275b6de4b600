package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/mailguard/mailguard/store"
)

// render produces the bytes to deliver: the fields mailguard prepends, then
// the message as received (only a forged Authentication-Results removed and
// a requested subject prefix added). The delivery carries what it needs, so
// rendering reads nothing but the message: its bytes when the delivery
// carries them (handed over in memory), the store's copy otherwise.
func (g *Gateway) render(ctx context.Context, d store.Delivery) (io.ReadCloser, error) {
	var f io.ReadSeekCloser
	if d.Data != nil {
		f = nopCloser{bytes.NewReader(d.Data)}
	} else {
		var err error
		if f, err = g.st.Open(ctx, d.MsgID); err != nil {
			return nil, err
		}
	}
	prefix := append(append([]byte{}, d.Extra...), d.Prepend...)
	if d.SubjectPrefix == "" && !d.StripAuthResults {
		return readCloser{io.MultiReader(bytes.NewReader(prefix), f), f}, nil
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("spool %s: not random access", d.MsgID)
	}
	size := d.Size
	if st, ok := f.(interface{ Stat() (os.FileInfo, error) }); ok && size == 0 {
		if fi, err := st.Stat(); err == nil {
			size = fi.Size()
		}
	}
	hdr, err := readHeader(ra, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(int64(len(hdr)), io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	hdr = rewriteHeader(hdr, g.Policy().Gateway.Hostname, d.StripAuthResults, d.SubjectPrefix)
	return readCloser{io.MultiReader(bytes.NewReader(prefix), bytes.NewReader(hdr), f), f}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }
