package smtp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// noopHandler accepts everything and discards the message.
type noopHandler struct{ n atomic.Int64 }

func (h *noopHandler) Connect(context.Context, ConnInfo) error       { return nil }
func (h *noopHandler) Mail(context.Context, *Envelope) error         { return nil }
func (h *noopHandler) Rcpt(context.Context, *Envelope, string) error { return nil }
func (h *noopHandler) Data(_ context.Context, _ *Envelope, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	h.n.Add(1)
	return err
}

func benchConfig() Config {
	cfg := testConfig()
	cfg.MaxConnsPerIP = 10000
	cfg.MaxConns = 10000
	return cfg
}

// message10K is a 10 KB message with 76-character lines.
func message10K() []byte {
	var b bytes.Buffer
	b.WriteString("From: a@sender.example\r\nTo: b@corp.example\r\nSubject: bench\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "abcdef\r\n"
	for b.Len() < 10*1024 {
		b.WriteString(line)
	}
	return b.Bytes()
}

// BenchmarkInbound measures the inbound path (front end, go-smtp, session,
// strict reader) with a no-op Handler: one pipelined transaction of a 10 KB
// message per iteration over persistent loopback connections.
func BenchmarkInbound(b *testing.B) {
	h := &noopHandler{}
	_, addrs := startServer(b, benchConfig(), h)
	msg := message10K()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addrs[0])
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		expect := func(code string) bool {
			for {
				line, err := br.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, code) {
					b.Errorf("got %q (%v), want %s", line, err, code)
					return false
				}
				if line[3] == ' ' {
					return true
				}
			}
		}
		if !expect("220") {
			return
		}
		fmt.Fprintf(c, "EHLO bench.example\r\n")
		if !expect("250") {
			return
		}
		for pb.Next() {
			fmt.Fprintf(c, "MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@corp.example>\r\nDATA\r\n")
			if !expect("250") || !expect("250") || !expect("354") {
				return
			}
			c.Write(msg)
			c.Write([]byte(".\r\n"))
			if !expect("250") {
				return
			}
		}
	})
	b.ReportMetric(float64(h.n.Load())/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkInboundSmtpSource drives the no-op server with Postfix's
// smtp-source (20 sessions, 10 KB messages, one message per connection).
func BenchmarkInboundSmtpSource(b *testing.B) {
	need(b, "smtp-source")
	h := &noopHandler{}
	_, addrs := startServer(b, benchConfig(), h)
	b.ResetTimer()
	start := time.Now()
	out, err := exec.Command("smtp-source", "-s", "20", "-m", strconv.Itoa(b.N), "-l", "10240",
		"-f", "a@sender.example", "-t", "b@corp.example", "-M", "bench.example", addrs[0]).CombinedOutput()
	if err != nil {
		b.Fatalf("smtp-source: %v\n%s", err, out)
	}
	elapsed := time.Since(start)
	if got := h.n.Load(); got != int64(b.N) {
		b.Fatalf("handler got %d messages, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkRelayToSmtpSink measures Relay.Deliver of a 10 KB message to
// Postfix's smtp-sink, one connection per message as the queue does.
func BenchmarkRelayToSmtpSink(b *testing.B) {
	need(b, "smtp-sink")
	addr := smtpSinkNoDump(b)
	for _, mode := range []TLSMode{TLSOff, TLSOpportunistic} {
		b.Run(string(mode), func(b *testing.B) {
			r, err := NewRelay(addr, RelayOptions{Hostname: "mx.test.example", TLS: mode})
			if err != nil {
				b.Fatal(err)
			}
			msg := message10K()
			m := Outgoing{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"},
				Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(msg)), nil }}
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res := r.Deliver(context.Background(), m, bytes.NewReader(msg))
					if !res[0].Delivered() {
						b.Errorf("%+v", res[0])
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// smtpSinkNoDump runs smtp-sink without capturing transactions.
func smtpSinkNoDump(b *testing.B) string {
	port := freePort(b)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("smtp-sink", "-u", "root", "-m", "512", addr, "512")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b.Fatal("smtp-sink did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// messageOfSize is a message of about size bytes with 76-character lines,
// a few of them starting with a dot (stuffed on the wire by sendDATA).
func messageOfSize(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@sender.example\r\nTo: b@corp.example\r\nSubject: bench\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "abcdef\r\n"
	for i := 0; b.Len() < size; i++ {
		if i%50 == 0 {
			b.WriteString("." + line[1:])
			continue
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

// dotStuff returns msg as it travels inside DATA, with the end-of-data line.
func dotStuff(msg []byte) []byte {
	var b bytes.Buffer
	for line := range bytes.Lines(msg) {
		if line[0] == '.' {
			b.WriteByte('.')
		}
		b.Write(line)
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// BenchmarkDataPath measures the DATA path alone (front end, go-smtp,
// session, body checks) over one loopback TCP connection: one pipelined
// transaction per iteration into a Handler that only drains the message.
// Unlike BenchmarkInbound it runs one connection, so ns/op is the cost of
// one message on one core plus the loopback round trip.
func BenchmarkDataPath(b *testing.B) {
	for _, size := range []int{10 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			h := &noopHandler{}
			_, addrs := startServer(b, benchConfig(), h)
			c, err := net.Dial("tcp", addrs[0])
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			expect := func(code string) {
				for {
					line, err := br.ReadString('\n')
					if err != nil || !strings.HasPrefix(line, code) {
						b.Fatalf("got %q (%v), want %s", line, err, code)
					}
					if line[3] == ' ' {
						return
					}
				}
			}
			expect("220")
			fmt.Fprintf(c, "EHLO bench.example\r\n")
			expect("250")
			msg := messageOfSize(size)
			tx := append([]byte("MAIL FROM:<a@sender.example>\r\nRCPT TO:<b@corp.example>\r\nDATA\r\n"), dotStuff(msg)...)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(tx); err != nil {
					b.Fatal(err)
				}
				expect("250")
				expect("250")
				expect("354")
				expect("250")
			}
			b.StopTimer()
			if got := h.n.Load(); got == 0 {
				b.Fatal("no message reached the handler")
			}
		})
	}
}

// BenchmarkDataParse measures the DATA parsing layers alone, from memory:
// "old" is the path before bodyReader (the front end's byte loop, go-smtp's
// lineLimitReader and dataReader, checkReader: the oracle of
// dataread_oracle_test.go), "new" is bodyReader. The Handler drains with a
// 32 KiB buffer, as io.Copy does; buffers are reused across messages, as
// on a connection.
func BenchmarkDataParse(b *testing.B) {
	buf := make([]byte, 32<<10)
	drain := func(b *testing.B, r io.Reader) {
		for {
			_, err := r.Read(buf)
			if err == io.EOF {
				return
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, size := range []int{10 << 10, 100 << 10} {
		wire := dotStuff(messageOfSize(size))
		b.Run(fmt.Sprintf("old/%dKB", size>>10), func(b *testing.B) {
			front := bufio.NewReaderSize(nil, DefaultMaxCommandLength)
			text := bufio.NewReader(nil)
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				front.Reset(bytes.NewReader(wire))
				fe := &oldFrontEnd{br: front}
				text.Reset(&goLineLimitReader{R: fe, LineLimit: DefaultMaxLineLength, curLineLength: 1})
				dr := &goDataReader{r: text, limited: true, n: DefaultMaxMessageBytes}
				drain(b, &oldCheckReader{r: dr, max: DefaultMaxMessageBytes, wire: &fe.bare, checks: allChecks})
			}
		})
		b.Run(fmt.Sprintf("new/%dKB", size>>10), func(b *testing.B) {
			bufs := &sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bodyBufSize) }}
			front := bufio.NewReaderSize(nil, DefaultMaxCommandLength)
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				w := &wireReader{r: bytes.NewReader(wire)}
				front.Reset(w)
				drain(b, newBodyReader(front, w, bufs, func() error { return nil }, DefaultMaxLineLength, DefaultMaxMessageBytes))
			}
		})
	}
}
