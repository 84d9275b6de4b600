package attach

import (
	"bytes"
	"context"
	"math/rand"
	"strings"
	"testing"
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

func benchWalk(b *testing.B, raw []byte) {
	dir := b.TempDir()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Walk(context.Background(), bytes.NewReader(raw), int64(len(raw)), Options{TempDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Files) < 5 && len(res.Files) != 1 {
			b.Fatalf("%d files", len(res.Files))
		}
		res.Close()
	}
}

// BenchmarkWalk is a realistic business mail: 10 KB of text, a 1 MB docx
// and a zip of a few files (MB/s of raw message).
func BenchmarkWalk(b *testing.B) { benchWalk(b, benchMessage(b)) }

// BenchmarkWalk20MB is one 20 MB attachment of random bytes (base64).
func BenchmarkWalk20MB(b *testing.B) {
	rng := rand.New(rand.NewSource(2))
	blob := make([]byte, 20<<20)
	rng.Read(blob)
	benchWalk(b, mkMessage("big", textPart("see attached"), attachment("big.bin", "application/octet-stream", blob)))
}
