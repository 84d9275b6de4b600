package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/mailguard/mailguard/store"
)

// deliveryInstructions are the parts of the stored report that change the
// bytes at delivery.
type deliveryInstructions struct {
	SubjectPrefix     string `json:"subject_prefix"`
	ForgedAuthResults int    `json:"forged_auth_results"`
}

// render produces the bytes to deliver: the fields mailguard prepends, then
// the message as received (only a forged Authentication-Results removed and
// a requested subject prefix added).
func (g *Gateway) render(ctx context.Context, d store.Delivery) (io.ReadCloser, error) {
	m, err := g.st.Get(ctx, d.MsgID)
	if err != nil {
		return nil, err
	}
	f, err := g.st.Open(ctx, d.MsgID)
	if err != nil {
		return nil, err
	}
	var di deliveryInstructions
	if len(m.Decision) > 0 {
		json.Unmarshal(m.Decision, &di)
	}
	prefix := append(append([]byte{}, d.Extra...), m.Prepend...)
	if di.SubjectPrefix == "" && di.ForgedAuthResults == 0 {
		return readCloser{io.MultiReader(bytes.NewReader(prefix), f), f}, nil
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("spool %s: not random access", d.MsgID)
	}
	hdr, err := readHeader(ra, m.Size)
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(int64(len(hdr)), io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	hdr = rewriteHeader(hdr, g.Policy().Gateway.Hostname, di.ForgedAuthResults > 0, di.SubjectPrefix)
	return readCloser{io.MultiReader(bytes.NewReader(prefix), bytes.NewReader(hdr), f), f}, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }
