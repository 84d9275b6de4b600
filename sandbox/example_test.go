package sandbox_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/sandbox/cape"
	"github.com/mailguard/mailguard/sandbox/capetest"
	"github.com/mailguard/mailguard/sandbox/sandboxtest"
)

// Example wires a Scheduler to a CAPE client (here against the emulator)
// the way the gateway does: Schedule the files of a held message, keep Run
// going, and re-decide the message when OnVerdict reports.
func Example() {
	emu, err := capetest.Start(capetest.Config{Default: capetest.Verdict{Profile: "malicious"}})
	if err != nil {
		panic(err)
	}
	defer emu.Close()
	client, err := cape.New(cape.Config{URL: emu.URL, RequestsPerMinute: 600})
	if err != nil {
		panic(err)
	}
	verdicts := make(chan sandbox.Verdict, 1)
	s, err := sandbox.New(sandbox.Config{
		Client:    client,
		Store:     sandboxtest.NewMemStore(), // the gateway passes its SQLite/PostgreSQL store
		Search:    true,
		OnVerdict: func(key string, v sandbox.Verdict) { verdicts <- v },
		Interval:  10 * time.Millisecond,
		Backoff:   sandbox.Backoff{FirstPoll: 10 * time.Millisecond, Poll: 10 * time.Millisecond},
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

	content := []byte("attachment bytes")
	sum := sha256.Sum256(content)
	res, err := s.Schedule(ctx, []sandbox.File{{
		SHA256: hex.EncodeToString(sum[:]), Name: "invoice.docm", Size: int64(len(content)),
		Options: map[string]string{"password": "Abc12345"},
		Open:    func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil },
	}})
	if err != nil {
		panic(err)
	}
	fmt.Println("cached:", res[0].Cached)
	v := <-verdicts
	fmt.Println(v.State, v.Malscore, v.Malstatus, v.Key == res[0].Key)
	// Output:
	// cached: false
	// done 8.5 Malicious true
}
