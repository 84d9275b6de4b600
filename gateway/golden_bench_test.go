package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/store/sqlite"
)

// benchInspectMessage is a typical inbound business mail: about 10 KB of
// text and a zip holding a Word document, DKIM-signed by partner.example.
func benchInspectMessage(b *testing.B, k *kit) []byte {
	b.Helper()
	var text strings.Builder
	for text.Len() < 10<<10 {
		text.WriteString("お世話になっております。先日のお打ち合わせの件につき、議事録と次回の議題をお送りいたします。\r\n")
		text.WriteString("Please find the minutes of our meeting and the agenda of the next one attached; comments are welcome.\r\n")
	}
	var doc strings.Builder
	doc.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>`)
	for i := range 200 {
		fmt.Fprintf(&doc, "<w:p><w:r><w:t>議事録 第%d項: 次回までに見積もりを更新し、納期を確認する。</w:t></w:r></w:p>", i)
	}
	doc.WriteString(`</w:body></w:document>`)
	docx := mkZip(b,
		zipEntry{"[Content_Types].xml", []byte(`<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`)},
		zipEntry{"_rels/.rels", []byte(`<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`)},
		zipEntry{"word/document.xml", []byte(doc.String())})
	z := mkZip(b, zipEntry{"議事録.docx", docx})
	m := letter{id: "bench", subject: "議事録送付の件", text: text.String(),
		parts: []mimePart{attachment("議事録.zip", "application/zip", z)}}
	return k.sign(b, m.bytes())
}

// benchGateway builds a gateway with authentication (fake DNS for
// partner.example), the attachment walk and the repository's YARA rules.
func benchGateway(b *testing.B) (*Gateway, []byte) {
	b.Helper()
	k := &kit{key: loadDKIMKey(b)}
	msg := benchInspectMessage(b, k)
	zone := filepath.Join(b.TempDir(), "bench.dns")
	if err := os.WriteFile(zone, []byte(k.partnerZone()), 0o644); err != nil {
		b.Fatal(err)
	}
	r := loadZone(b, zone)
	rules, err := filepath.Abs("../rules")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	ppath := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(ppath, []byte(fmt.Sprintf(goldenPolicy, rules)), 0o644); err != nil {
		b.Fatal(err)
	}
	p, diags := policy.Load(ppath)
	if diags.HasErrors() {
		b.Fatal(policy.FormatDiagnostics(diags))
	}
	st, err := sqlite.Open(filepath.Join(dir, "var"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	g, err := New(Options{Policy: p, Store: st, Sandbox: st.Sandbox(), Resolver: r})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	rep := benchInspectOnce(b, g, msg)
	if rep.Action != policy.Deliver || len(rep.Files) != 2 || rep.Auth.DMARC.Status != "pass" || !rep.Complete {
		b.Fatalf("benchmark message not inspected as a clean, authenticated mail with 2 files (zip, docx): %s %v files %d dmarc %s",
			rep.Action, rep.Reasons, len(rep.Files), rep.Auth.DMARC.Status)
	}
	return g, msg
}

func benchInspectOnce(b *testing.B, g *Gateway, msg []byte) *Report {
	rep, err := g.Inspect(context.Background(), Envelope{ID: "bench", Direction: "inbound", ClientIP: netip.MustParseAddr("198.51.100.7"),
		HELO: "mail.partner.example", MailFrom: "alice@partner.example", Rcpts: []string{"bob@corp.example"}},
		bytes.NewReader(msg), int64(len(msg)), InspectOptions{Offline: true})
	if err != nil {
		b.Fatal(err)
	}
	rep.Close()
	return rep
}

// BenchmarkInspectTypical is one inspection of a typical message (10 KB of
// text and a zip with a docx): SPF, DKIM and DMARC against a fake
// resolver, the MIME and archive walk, YARA over every file and body, and
// the policy. The conversation memory and the sandbox are off.
func BenchmarkInspectTypical(b *testing.B) {
	g, msg := benchGateway(b)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		benchInspectOnce(b, g, msg)
	}
}

// BenchmarkInspectTypicalParallel is the same with concurrent inspections
// (GOMAXPROCS goroutines), the throughput of a busy node.
func BenchmarkInspectTypicalParallel(b *testing.B) {
	g, msg := benchGateway(b)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchInspectOnce(b, g, msg)
		}
	})
}
