package reputation

import (
	"strings"

	"golang.org/x/net/html"
)

// urlAttrs are the attributes whose value is a link a reader or a mail
// client may follow or load.
var urlAttrs = map[string]bool{
	"href": true, "src": true, "action": true, "formaction": true, "background": true,
	"poster": true, "data": true, "cite": true, "longdesc": true, "xlink:href": true,
}

// maxHTMLText bounds the visible text collected from one HTML body for
// plain-text URL extraction.
const maxHTMLText = 4 << 20

// htmlState is the walk through one HTML document.
type htmlState struct {
	x      *extractor
	depth  int
	text   strings.Builder // visible text outside links, scanned for URLs at the end
	inLink bool
	href   string          // target of the open <a>/<area>
	anchor strings.Builder // its visible text
	skip   string          // raw-text element whose text is ignored (style, title)
}

// html extracts links from an HTML document. Conditional comments
// (<!--[if mso]> ... <![endif]-->, where Outlook renders VML buttons with
// links) are parsed as HTML one level deep.
func (x *extractor) html(doc string, depth int) {
	st := &htmlState{x: x, depth: depth}
	z := html.NewTokenizer(strings.NewReader(doc))
	for !x.full() {
		tt := z.Next()
		if tt == html.ErrorToken {
			break // io.EOF or malformed input: keep what was found
		}
		st.token(z, tt)
	}
	st.closeLink()
	x.text(st.text.String(), "text")
}

func (st *htmlState) token(z *html.Tokenizer, tt html.TokenType) {
	switch tt {
	case html.StartTagToken, html.SelfClosingTagToken:
		name, hasAttr := z.TagName()
		st.startTag(string(name), hasAttr, z, tt == html.SelfClosingTagToken)
	case html.EndTagToken:
		name, _ := z.TagName()
		switch string(name) {
		case "a", "area":
			st.closeLink()
		case st.skip:
			st.skip = ""
		}
	case html.TextToken:
		if st.skip != "" {
			return
		}
		t := z.Text() // entities are decoded
		if st.inLink {
			if st.anchor.Len() < 1024 {
				st.anchor.Write(t)
			}
			return
		}
		if st.text.Len() < maxHTMLText {
			st.text.Write(t)
			st.text.WriteByte(' ')
		}
	case html.CommentToken:
		c := string(z.Text())
		if st.depth == 0 && strings.HasPrefix(strings.TrimSpace(c), "[if") {
			st.x.html(c, st.depth+1)
		}
	}
}

func (st *htmlState) startTag(name string, hasAttr bool, z *html.Tokenizer, selfClosing bool) {
	isLink := name == "a" || name == "area"
	if isLink {
		st.closeLink() // an unclosed previous anchor ends here
	}
	var refresh, content, href string
	for hasAttr {
		var k, v []byte
		k, v, hasAttr = z.TagAttr()
		key, val := string(k), string(v)
		switch {
		case len(val) > 11 && strings.EqualFold(val[:11], "javascript:"):
			st.x.text(val[11:], "html") // javascript:location='http://…'
		case isLink && key == "href":
			href = val
		case urlAttrs[key]:
			st.x.add(val, "html", "")
		case key == "srcset":
			for _, cand := range strings.Split(val, ",") {
				if f := strings.Fields(cand); len(f) > 0 {
					st.x.add(f[0], "html", "")
				}
			}
		case name == "meta" && key == "http-equiv" && strings.EqualFold(val, "refresh"):
			refresh = val
		case name == "meta" && key == "content":
			content = val
		}
	}
	if refresh != "" {
		if i := indexASCIIFold(content, "url="); i >= 0 {
			st.x.add(strings.Trim(strings.TrimSpace(content[i+len("url="):]), "'\""), "html", "")
		}
	}
	switch {
	case isLink && !selfClosing:
		st.inLink, st.href = true, href
		st.anchor.Reset()
	case isLink:
		st.x.add(href, "html", "")
	case name == "style" || name == "title" || name == "textarea":
		st.skip = name
	}
}

// closeLink records the open anchor with its visible text.
func (st *htmlState) closeLink() {
	if !st.inLink {
		return
	}
	st.inLink = false
	text := strings.Join(strings.Fields(st.anchor.String()), " ")
	// The visible text is not extracted as a link of its own (it is the
	// decoy); it is only compared with the target.
	st.x.add(st.href, "html", text)
}

// indexASCIIFold is the index of the first lit (lower-case ASCII) in s in
// any ASCII case, or -1. Unlike strings.ToLower, it keeps s's offsets
// whatever s holds (invalid UTF-8 included).
func indexASCIIFold(s, lit string) int {
	for i := 0; i+len(lit) <= len(s); i++ {
		j := 0
		for ; j < len(lit); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lit[j] {
				break
			}
		}
		if j == len(lit) {
			return i
		}
	}
	return -1
}
