package gateway

import (
	"strings"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reason"
)

// fileClasses are the sandbox submission classes (policy sandbox.submit)
// a file belongs to.
func fileClasses(f *attach.File) map[string]bool {
	c := map[string]bool{"all": true}
	for _, fd := range f.Findings {
		switch fd.Tag {
		case reason.ExecAttachment:
			c["executable"], c["script"] = true, true
		case reason.MacroDocument:
			c["macro_document"] = true
		case reason.PDFActiveContent:
			c["pdf_active"] = true
		case reason.HTMLSmuggling:
			c["html_smuggling"] = true
		case reason.LNKInContainer:
			c["lnk"] = true
		case reason.OneNoteEmbeddedFile:
			c["onenote"] = true
		}
	}
	t := f.Type
	switch {
	case t == "application/x-ms-shortcut":
		c["lnk"] = true
	case t == "application/onenote":
		c["onenote"] = true
	case t == "application/pdf":
		c["pdf"] = true
	case strings.Contains(t, "officedocument") || strings.Contains(t, "msword") || strings.Contains(t, "ms-excel") ||
		strings.Contains(t, "ms-powerpoint") || strings.Contains(t, "x-ole-storage") || strings.Contains(t, "rtf"):
		c["office"] = true
	case strings.Contains(t, "zip") || strings.Contains(t, "7z") || strings.Contains(t, "rar") ||
		strings.Contains(t, "tar") || strings.Contains(t, "iso9660") || strings.Contains(t, "cab"):
		c["archive"] = true
	}
	return c
}

// sandboxCandidates are the files the policy's submit classes select.
// Derived files (decompressed VBA source) are not samples: their document
// is. Files whose content could not be extracted cannot be submitted.
func sandboxCandidates(p *policy.Policy, files []*attach.File, firstContact bool) []*attach.File {
	s := p.Sandbox()
	if s == nil {
		return nil
	}
	var out []*attach.File
	for _, f := range files {
		if f.Derived || f.Size == 0 || (f.Encrypted && !f.Decrypted) || f.Truncated {
			continue
		}
		cl := fileClasses(f)
		for _, want := range s.Submit {
			if cl[want] || want == "first_contact" && firstContact && f.Depth == 0 {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// stageSandbox fills the sandbox facts. Verdicts come from the sandbox
// scheduler once one is wired; without a verdict a candidate is unjudged.
func (g *Gateway) stageSandbox(st *stages, opt InspectOptions, rep *Report) {
	p := st.pol
	if p.Sandbox() == nil {
		return
	}
	firstContact := false
	for _, f := range rep.facts.Findings {
		if f.Tag == reason.FirstContactAttachment {
			firstContact = true
		}
	}
	cands := sandboxCandidates(p, rep.Files, firstContact)
	sf := &rep.facts.Sandbox
	sf.Configured = true
	sf.Candidates = len(cands)
	sf.Unjudged = len(cands)
	sf.TimedOut = !opt.HoldUntil.IsZero() && !g.now().Before(opt.HoldUntil)
}
