package attach

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

func benchMessage(b *testing.B) []byte {
	rng := rand.New(rand.NewSource(1))
	img := make([]byte, 1<<20)
	rng.Read(img)
	docx := mkZip(b, map[string][]byte{
		"[Content_Types].xml":   []byte(`<Types><Override ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`),
		"word/document.xml":     []byte("<w:document>" + strings.Repeat("<w:p><w:r><w:t>見積書 quotation line</w:t></w:r></w:p>", 2000) + "</w:document>"),
		"word/media/image1.png": img,
	}, "[Content_Types].xml", "word/document.xml", "word/media/image1.png")
	zipped := mkZip(b, map[string][]byte{
		"a.txt": bytes.Repeat([]byte("report line\n"), 2000),
		"b.pdf": jsPDF(),
		"c.csv": bytes.Repeat([]byte("1,2,3,4\n"), 5000),
	}, "a.txt", "b.pdf", "c.csv")
	text := strings.Repeat("お世話になっております。見積書をお送りします。Please find the quotation attached.\r\n", 100)
	return mkMessage("見積書送付の件", textPart(text[:10<<10]),
		attachment("quotation.docx", "application/octet-stream", docx),
		attachment("data.zip", "application/zip", zipped))
}

func benchWalk(b *testing.B, raw []byte, lim Limits) {
	dir := b.TempDir()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	runtime.GC()
	base := heapObjects()
	var peak uint64
	stop := samplePeakHeap(&peak)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Walk(context.Background(), bytes.NewReader(raw), int64(len(raw)), Options{TempDir: dir, Limits: lim})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Files) < 5 && len(res.Files) != 1 && len(res.Bodies) != 1 {
			b.Fatalf("%d files", len(res.Files))
		}
		res.Close()
	}
	b.StopTimer()
	stop()
	b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "peak-heap-MiB")
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// samplePeakHeap records the largest heap (runtime/metrics: live objects
// and garbage not yet swept) seen every millisecond until the returned
// stop is called. benchWalk reports it above the heap before the walks
// (which holds the input message).
func samplePeakHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			*peak = max(*peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// BenchmarkWalk is a realistic business mail: 10 KB of text, a 1 MB docx
// and a zip of a few files (MB/s of raw message).
func BenchmarkWalk(b *testing.B) { benchWalk(b, benchMessage(b), Limits{}) }

// BenchmarkWalk30MB is one 30 MB attachment of random bytes (base64),
// spilled to disk.
func BenchmarkWalk30MB(b *testing.B) {
	rng := rand.New(rand.NewSource(2))
	blob := make([]byte, 30<<20)
	rng.Read(blob)
	benchWalk(b, mkMessage("big", textPart("see attached"), attachment("big.bin", "application/octet-stream", blob)), Limits{})
}

// BenchmarkWalk5000Small is a zip of 5,000 small files (200 bytes to 2 KB
// of text each), with the file limit raised above its default of 2,000.
func BenchmarkWalk5000Small(b *testing.B) {
	rng := rand.New(rand.NewSource(3))
	files := map[string][]byte{}
	var order []string
	for i := range 5000 {
		name := fmt.Sprintf("dir%d/file%d.txt", i%50, i)
		files[name] = bytes.Repeat([]byte(fmt.Sprintf("line %d of a small file\n", rng.Intn(1000))), 8+rng.Intn(72))
		order = append(order, name)
	}
	raw := mkMessage("many files", textPart("see attached"), attachment("many.zip", "application/zip", mkZip(b, files, order...)))
	benchWalk(b, raw, Limits{MaxFiles: 6000})
}

// BenchmarkWalkText is a 100 KB text/plain message without attachments,
// in English (ASCII) and in Japanese (ISO-2022-JP, as Japanese mail is
// usually sent): the relay benchmark's shape, and a plain business mail.
func BenchmarkWalkText(b *testing.B) {
	b.Run("ascii", func(b *testing.B) {
		text := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n", 1300)
		benchWalk(b, mkMessage("text", textPart(text)), Limits{})
	})
	b.Run("iso-2022-jp", func(b *testing.B) {
		line := iso2022jp("お世話になっております。見積書をお送りします。ご確認ください。\r\n")
		text := strings.Repeat(line, 100<<10/len(line))
		benchWalk(b, mkMessage("text", part{header: "Content-Type: text/plain; charset=iso-2022-jp\r\nContent-Transfer-Encoding: 7bit\r\n", body: text}), Limits{})
	})
}
