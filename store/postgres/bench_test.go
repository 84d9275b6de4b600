package postgres

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/store/sqlite"
)

// BenchmarkRelay measures the store's share of relaying one message: Accept
// (8 KiB, durable), Decide (queued, with a file index entry, a 1 KiB
// decision and one delivery), Claim and DeliveryDone, at 1 and 10
// messages in flight, on SQLite (a temporary directory) and on PostgreSQL
// (a fresh schema; one connection per message in flight). One op is one
// message. Run with MAILGUARD_TEST_POSTGRES set:
//
//	go test -run '^$' -bench Relay -benchtime 2000x ./store/postgres
func BenchmarkRelay(b *testing.B) {
	for _, conc := range []int{1, 10} {
		b.Run(fmt.Sprintf("sqlite/c%d", conc), func(b *testing.B) {
			s, err := sqlite.Open(b.TempDir(), sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchRelay(b, s, conc)
		})
		b.Run(fmt.Sprintf("postgres/c%d", conc), func(b *testing.B) {
			u := withParam(b, freshSchema(b), "pool_max_conns", fmt.Sprint(conc))
			benchRelay(b, openURL(b, u, Options{}), conc)
		})
	}
}

var benchBody = func() string {
	var sb strings.Builder
	sb.WriteString("From: Alice <alice@partner.example>\r\nTo: bob@corp.example\r\nSubject: quarterly report\r\n" +
		"Message-ID: <bench@partner.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for sb.Len() < 8<<10 {
		sb.WriteString("The figures for the quarter are attached; please review them before Friday.\r\n")
	}
	return sb.String()
}()

var benchDecision = bytes.Repeat([]byte(`{"action":"deliver","reasons":["clean"],"score":0,"files":[]} `), 16)

func benchRelay(b *testing.B, s store.Store, conc int) {
	ctx := context.Background()
	var next atomic.Int64
	prefix := fmt.Sprintf("b%d-%d-", conc, time.Now().UnixNano())
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("node/%d", w)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := relayOne(ctx, s, fmt.Sprintf("%s%d", prefix, i), owner); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func relayOne(ctx context.Context, s store.Store, id, owner string) error {
	m := &store.Message{ID: id, Direction: "inbound", ClientIP: "192.0.2.1", HELO: "mx.partner.example",
		Proto: "ESMTPS", MailFrom: "alice@partner.example", Rcpts: []string{"bob@corp.example"}}
	if _, err := s.Accept(ctx, m, strings.NewReader(benchBody)); err != nil {
		return err
	}
	err := s.Decide(ctx, id, []store.State{store.Received}, store.Decided{State: store.Queued, Action: "deliver",
		MessageID: "bench@partner.example", From: "Alice <alice@partner.example>", Subject: "quarterly report",
		Reasons: []string{"clean"}, Decision: benchDecision, Prepend: []byte("X-Mailguard-Id: " + id + "\r\n"),
		Files:      []store.FileRef{{SHA256: strings.Repeat("ab", 32), Path: "body", Name: "", Type: "text/plain", Size: 8 << 10}},
		Deliveries: []store.Delivery{{Route: "inbound", MailFrom: m.MailFrom, Rcpts: m.Rcpts}}})
	if err != nil {
		return err
	}
	for try := 0; try < 100; try++ {
		ds, err := s.Claim(ctx, owner, time.Minute, 1)
		if err != nil {
			return err
		}
		if len(ds) == 1 {
			return s.DeliveryDone(ctx, ds[0].ID, []store.RcptResult{{Rcpt: ds[0].Rcpts[0], Code: 250}}, nil, nil)
		}
	}
	return fmt.Errorf("%s: nothing to claim", id)
}
