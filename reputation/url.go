package reputation

import (
	"errors"
	"html"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// URL is one link found in a message, normalised.
type URL struct {
	// Raw is the link as found (entities decoded), at most 2048 bytes.
	Raw string `json:"raw"`
	// Normalized is scheme://host/path with the host normalised; it is
	// what duplicates are recognised by.
	Normalized string `json:"url"`
	// Host is the lowercase ASCII host (IDNs in punycode, no trailing dot,
	// no userinfo or port); an IP literal in canonical form.
	Host string `json:"host"`
	// Unicode is Host in Unicode when it is an internationalised name.
	Unicode string `json:"unicode,omitempty"`
	// Domain is the registrable domain (public suffix + 1 label) of Host;
	// the address itself for IP literals, Host when it has no public
	// suffix.
	Domain string `json:"domain"`

	IPLiteral  bool `json:"ip_literal,omitempty"` // host is an IPv4/IPv6 address (in any notation browsers accept)
	Shortener  bool `json:"shortener,omitempty"`  // host is a known URL shortener
	Punycode   bool `json:"punycode,omitempty"`   // host has an xn-- (IDN) label
	Mismatch   bool `json:"mismatch,omitempty"`   // the link's visible text shows another domain
	Userinfo   bool `json:"userinfo,omitempty"`   // had user@ before the host: the http://bank.example@evil trick
	Obfuscated bool `json:"obfuscated,omitempty"` // defanged (hxxp, [.]) or host written with escapes or numeric IP forms

	// Text is the visible text of the link (HTML anchors), at most 256
	// bytes.
	Text string `json:"text,omitempty"`
	// Source is where it was found: "html" (an attribute), "text" (plain
	// text or HTML text), "pdf" (a PDF /URI action).
	Source string `json:"source"`
}

const (
	maxRawLen  = 2048
	maxTextLen = 256
)

// ExtractURLs finds the links in a plain-text body and an HTML body
// (either may be empty), normalises and deduplicates them, and returns at
// most max of them (max <= 0: DefaultMaxURLs) in order of appearance, HTML
// first.
//
// From HTML it reads href, src, action, formaction, background, poster,
// data, cite and srcset attributes, meta refresh targets, the text (where
// mail clients turn URLs into links), script text, and Outlook's
// conditional comments; anchors' visible text is compared with their
// target (URL.Mismatch). From text it reads http(s)/ftp URLs, www. hosts
// without a scheme and their defanged forms (hxxp, [.], (.), [dot], [:]).
// Hosts may be written with entities, percent escapes, IDNs or numeric IP
// forms; all are normalised. Nothing is fetched.
func ExtractURLs(text, htmlBody string, max int) []URL {
	x := newExtractor(max)
	if htmlBody != "" {
		x.html(htmlBody, 0)
	}
	if text != "" {
		x.text(text, "text")
	}
	return x.urls
}

// extractor collects unique URLs up to a limit.
type extractor struct {
	max   int
	urls  []URL
	index map[string]int
}

func newExtractor(max int) *extractor {
	if max <= 0 {
		max = DefaultMaxURLs
	}
	return &extractor{max: max, index: map[string]int{}}
}

func (x *extractor) full() bool { return len(x.urls) >= x.max }

// add parses raw and records it; anchor is the visible text of the link
// ("" if none). Text-sourced candidates without a scheme must have a known
// public suffix.
func (x *extractor) add(raw, source, anchor string) {
	strict := source == "text"
	u, ok := parseURL(raw, strict)
	if !ok {
		return
	}
	u.Source = source
	if anchor != "" {
		u.Text = truncate(anchor, maxTextLen)
		u.Mismatch = mismatch(anchor, u.Domain)
	}
	if i, dup := x.index[u.Normalized]; dup {
		if u.Mismatch && !x.urls[i].Mismatch {
			x.urls[i].Mismatch, x.urls[i].Text = true, u.Text
		}
		return
	}
	if x.full() {
		return
	}
	x.index[u.Normalized] = len(x.urls)
	x.urls = append(x.urls, u)
}

// textURL finds URL candidates in text: a scheme (also defanged) or
// "www." (also defanged), a host part that may hold any non-space
// characters (IDNs, defanging brackets), and an ASCII path. Only the
// scheme is case-insensitive: under (?i) the non-ASCII range in the path
// class would fold onto "s" and "k" (U+017F, U+212A).
var textURL = regexp.MustCompile(`(?i:\b(?:h[tx]{2}ps?|h\*\*ps?|fxp|ftps?)(?:\[:\]//|\(:\)//|\[://\]|://|:\\\\)|\bwww(?:\.|\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)))` +
	`[^\s/?#\\<>"'` + "`" + `\x00-\x1f\x7f]*` +
	`(?:[/?#\\][^\s<>"'` + "`" + `\x00-\x1f\x7f\x{80}-\x{10FFFF}]*)?`)

// textURLAt is textURL anchored at the start of its input.
var textURLAt = regexp.MustCompile(`^(?:` + textURL.String() + `)`)

// text extracts URL candidates from plain text. Running textURL over the
// whole text is slow (no literal prefix, so RE2 simulates an NFA at every
// byte); instead markers ("//", "www", ":\\") are found with a plain
// search and the anchored expression runs only where a URL may start.
func (x *extractor) text(s, source string) {
	for pos := 0; pos < len(s) && !x.full(); {
		start, next := nextCandidate(s, pos)
		if start < 0 {
			return
		}
		end := min(len(s), start+2*maxRawLen)
		if m := textURLAt.FindStringIndex(s[start:end]); m != nil {
			x.add(trimTrailing(s[start:start+m[1]]), source, "")
			next = max(next, start+m[1])
		}
		pos = next
	}
}

// nextCandidate finds the next place at or after pos where a URL may
// start: the scheme before "//" (or ":\\", "[://]"), or "www" at a word
// start. It returns that start and where to continue searching.
func nextCandidate(s string, pos int) (start, next int) {
	for pos < len(s) {
		i := indexMarker(s[pos:])
		if i < 0 {
			return -1, len(s)
		}
		i += pos
		if hasPrefixFold(s[i:], "www") {
			if i == 0 || !isWordByte(s[i-1]) {
				return i, i + 3
			}
			pos = i + 3
			continue
		}
		// Walk back over the scheme (letters, '*') and its defanging
		// brackets: "hxxp[://]", "http(:)//", "https:\\".
		j := i
		for j > 0 && j > i-10 && (isAlpha(s[j-1]) || strings.IndexByte("*[]():", s[j-1]) >= 0) {
			j--
		}
		for j < i && !isAlpha(s[j]) {
			j++
		}
		if j < i && (j == 0 || !isWordByte(s[j-1])) {
			return j, i + 1
		}
		pos = i + 1
	}
	return -1, len(s)
}

// indexMarker returns the index of the first "//", "\\\\" or "www" (any
// case) in s, or -1.
func indexMarker(s string) int {
	for i := 0; i+1 < len(s); i++ {
		switch c := s[i]; c {
		case '/', '\\':
			if s[i+1] == c {
				return i
			}
		case 'w', 'W':
			if i+2 < len(s) && (s[i+1]|0x20) == 'w' && (s[i+2]|0x20) == 'w' {
				return i
			}
		}
	}
	return -1
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isWordByte(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' || c == '_' }

// trimTrailing removes punctuation that ends a sentence rather than a URL,
// keeping balanced closing brackets.
func trimTrailing(s string) string {
	for s != "" {
		last := s[len(s)-1]
		switch last {
		case '.', ',', ';', ':', '!', '?', '\'', '"', '*', '>':
			s = s[:len(s)-1]
			continue
		case ')', ']', '}':
			open := map[byte]byte{')': '(', ']': '[', '}': '{'}[last]
			if strings.Count(s, string(open)) < strings.Count(s, string(last)) {
				s = s[:len(s)-1]
				continue
			}
		}
		return s
	}
	return s
}

// truncate cuts s to at most n bytes of valid UTF-8 (invalid bytes from
// hostile input are replaced).
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// defangs maps defanged notation back to URL syntax.
var defangs = strings.NewReplacer(
	"[.]", ".", "(.)", ".", "{.}", ".", "[dot]", ".", "(dot)", ".", "[DOT]", ".", "(DOT)", ".",
	"[:]", ":", "(:)", ":", "[://]", "://",
)

// schemes maps the schemes (and defanged forms) of links that are looked
// up to their real scheme.
var schemes = map[string]string{
	"http": "http", "https": "https", "ftp": "ftp", "ftps": "ftps",
	"hxxp": "http", "hxxps": "https", "htxp": "http", "htxps": "https", "hxtp": "http", "hxtps": "https",
	"h**p": "http", "h**ps": "https", "fxp": "ftp",
}

// parseURL normalises one candidate link. strict requires a known public
// suffix for links written without a scheme.
func parseURL(raw string, strict bool) (URL, bool) {
	u := URL{Raw: truncate(raw, maxRawLen)}
	s := strings.TrimSpace(raw)
	if strings.ContainsRune(s, '&') && strict {
		s = html.UnescapeString(s) // plain text carrying HTML entities (&#46;)
	}
	if d := defangs.Replace(s); d != s {
		u.Obfuscated, s = true, d
	}
	s = strings.TrimLeft(s, "\"'<([{")
	withScheme := true
	switch {
	case strings.HasPrefix(s, "//"):
		s = "https:" + s
	case len(s) > 4 && strings.EqualFold(s[:4], "www."):
		s, withScheme = "http://"+s, false
	}
	i := strings.Index(s, "://")
	if i < 0 {
		if j := strings.Index(s, ":\\\\"); j > 0 { // http:\\host
			s, i = s[:j]+"://"+s[j+3:], j
		} else {
			return URL{}, false
		}
	}
	scheme, ok := schemes[strings.ToLower(s[:i])]
	if !ok {
		return URL{}, false
	}
	if scheme != strings.ToLower(s[:i]) {
		u.Obfuscated = true
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "/?#\\")
	if end < 0 {
		end = len(rest)
	}
	authority, path := rest[:end], strings.Replace(rest[end:], "\\", "/", 1)
	if strict {
		if cut, ok := cutAtText(authority); ok {
			authority, path = cut, "" // "https://example.comをご覧ください": the host ends where the sentence goes on
		}
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		authority, u.Userinfo = authority[at+1:], true
	}
	host, ok := normaliseHost(stripPort(authority), &u, strict && !withScheme)
	if !ok {
		return URL{}, false
	}
	u.Host = host
	hostPart := host
	if strings.Contains(host, ":") {
		hostPart = "[" + host + "]"
	}
	u.Normalized = truncate(scheme+"://"+hostPart+path, maxRawLen)
	u.Shortener = builtinShortener(u.Host, u.Domain)
	return u, true
}

// cutAtText handles text where a host runs into non-ASCII words without a
// space: it cuts the authority at the first ASCII-to-non-ASCII transition
// after which the ASCII part is a host with a known public suffix.
func cutAtText(authority string) (string, bool) {
	if isASCII(authority) {
		return "", false
	}
	for i := 1; i < len(authority); i++ {
		if authority[i] >= utf8.RuneSelf && authority[i-1] < utf8.RuneSelf {
			cand := authority[:i]
			if isASCII(cand) && hasKnownSuffix(strings.ToLower(strings.TrimRight(stripPort(cand), "."))) {
				return cand, true
			}
		}
	}
	return "", false
}

func stripPort(authority string) string {
	if strings.HasPrefix(authority, "[") {
		if end := strings.IndexByte(authority, ']'); end > 0 {
			return authority[:end+1]
		}
		return authority
	}
	if i := strings.LastIndexByte(authority, ':'); i >= 0 {
		return authority[:i]
	}
	return authority
}

// idnaLookup maps and validates host names as browsers do for lookup
// (UTS #46), but allows underscores, which real host names carry.
var idnaLookup = idna.New(idna.MapForLookup(), idna.StrictDomainName(false), idna.BidiRule(), idna.Transitional(false))

func toASCII(host string) (string, error) {
	a, err := idnaLookup.ToASCII(host)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(a, "."), nil
}

var errBadHost = errors.New("bad host")

// normaliseHost decodes, maps and classifies a host and fills u's host
// facts. knownSuffix requires a public suffix the list knows.
func normaliseHost(h string, u *URL, knownSuffix bool) (string, bool) {
	if strings.ContainsRune(h, '%') {
		dec, err := percentDecode(h)
		if err != nil {
			return "", false
		}
		u.Obfuscated, h = true, dec
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() {
			return "", false
		}
		a = a.WithZone("").Unmap()
		u.IPLiteral, u.Domain = true, a.String()
		return a.String(), true
	}
	h = strings.TrimRight(h, ".")
	if h == "" || len(h) > 253*4 {
		return "", false
	}
	if a, isNum, err := parseIPv4(h); isNum {
		if err != nil {
			return "", false // ends in a number but is no address: browsers refuse it
		}
		if a.String() != h {
			u.Obfuscated = true
		}
		u.IPLiteral, u.Domain = true, a.String()
		return a.String(), true
	}
	ascii, err := toASCII(h)
	if err != nil {
		if ascii, err = lenientASCII(h); err != nil {
			return "", false
		}
	}
	if !validHostname(ascii) {
		return "", false
	}
	if a, isNum, err := parseIPv4(ascii); isNum { // fullwidth digits mapped to an address
		if err != nil {
			return "", false
		}
		u.IPLiteral, u.Obfuscated, u.Domain = true, true, a.String()
		return a.String(), true
	}
	u.Punycode = strings.HasPrefix(ascii, "xn--") || strings.Contains(ascii, ".xn--")
	if u.Punycode {
		if uni, err := idna.Display.ToUnicode(ascii); err == nil && uni != ascii {
			u.Unicode = uni
		}
	} else if !isASCII(h) {
		u.Obfuscated = true // non-ASCII that maps to plain ASCII (fullwidth letters, ideographic dots)
	}
	if knownSuffix && !hasKnownSuffix(ascii) {
		return "", false
	}
	u.Domain = registrable(ascii)
	return ascii, true
}

// lenientASCII lowercases and punycode-encodes a host that UTS #46
// rejects (e.g. for bidi rules): such a host stays visible, flagged as an
// IDN, instead of disappearing.
func lenientASCII(h string) (string, error) {
	labels := strings.Split(strings.ToLower(h), ".")
	for i, l := range labels {
		if l == "" {
			return "", errBadHost
		}
		if isASCII(l) {
			for j := 0; j < len(l); j++ {
				c := l[j]
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
					return "", errBadHost
				}
			}
			continue
		}
		p, err := idna.Punycode.ToASCII(l)
		if err != nil || !strings.HasPrefix(p, "xn--") {
			return "", errBadHost
		}
		labels[i] = p
	}
	return strings.Join(labels, "."), nil
}

// validHostname checks the ASCII form of a host name: LDH labels (plus
// underscore) of 1 to 63 bytes, 253 bytes in all.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func percentDecode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errBadHost
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errBadHost
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// parseIPv4 implements the WHATWG URL "ends in a number" check and IPv4
// parser: 1 to 4 dot-separated parts, each decimal, 0x-hex or 0-octal,
// the last filling the remaining bytes (so 3232235777, 0xC0A80101 and
// 0300.0250.1.1 are all 192.168.1.1). isNum reports whether the host ends
// in a number; then err says whether it is a valid address.
func parseIPv4(h string) (a netip.Addr, isNum bool, err error) {
	parts := strings.Split(h, ".")
	last := parts[len(parts)-1]
	if _, e := parseIPv4Part(last); e != nil && !isDigits(last) {
		return netip.Addr{}, false, nil
	}
	if len(parts) > 4 {
		return netip.Addr{}, true, errBadHost
	}
	var nums []uint64
	for _, p := range parts {
		v, e := parseIPv4Part(p)
		if e != nil {
			return netip.Addr{}, true, errBadHost
		}
		nums = append(nums, v)
	}
	var ip uint64
	for i, v := range nums[:len(nums)-1] {
		if v > 255 {
			return netip.Addr{}, true, errBadHost
		}
		ip |= v << (8 * (3 - i))
	}
	lastV := nums[len(nums)-1]
	if lastV >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, true, errBadHost
	}
	ip |= lastV
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true, nil
}

func parseIPv4Part(p string) (uint64, error) {
	if p == "" {
		return 0, errBadHost
	}
	base := 10
	switch {
	case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
		p, base = p[2:], 16
		if p == "" {
			return 0, nil
		}
	case len(p) > 1 && p[0] == '0':
		p, base = p[1:], 8
	}
	v, err := strconv.ParseUint(p, base, 64)
	if err != nil || v > 0xFFFFFFFF {
		return 0, errBadHost
	}
	return v, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// hasKnownSuffix reports whether the public suffix list knows host's
// suffix (rather than applying its default "*" rule to an unknown TLD).
func hasKnownSuffix(host string) bool {
	if !strings.Contains(host, ".") {
		return false
	}
	ps, icann := publicsuffix.PublicSuffix(host)
	return (icann || strings.Contains(ps, ".")) && ps != host
}

// registrable returns host's registrable domain, or host itself when it
// has none (a bare public suffix or a single label).
func registrable(host string) string {
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return host
	}
	return d
}

// fileLikeTLDs are TLDs that are also common file extensions: a bare
// "invoice.zip" in a link's text is a file name, not a host.
var fileLikeTLDs = map[string]bool{"zip": true, "mov": true, "md": true, "sh": true, "py": true, "rs": true}

// visibleHost finds host names shown in a link's text: URLs, www. hosts
// and bare names such as "paypal.com" or "support@bank.example".
var visibleHost = regexp.MustCompile(`(?i)(?:[\p{L}\p{N}](?:[\p{L}\p{N}_-]{0,62})?(?:\.|。|．|｡))+(?:[\p{L}]{2,63}|xn--[a-z0-9-]{1,59})`)

// mismatch reports whether the visible text of a link names a registrable
// domain other than the target's.
func mismatch(anchor, target string) bool {
	anchor = truncate(anchor, 1024)
	for _, m := range textURL.FindAllString(anchor, 8) {
		if v, ok := parseURL(trimTrailing(m), false); ok && v.Domain != target {
			return true
		}
	}
	for _, m := range visibleHost.FindAllString(anchor, 8) {
		var v URL
		host, ok := normaliseHost(m, &v, true)
		if !ok {
			continue
		}
		if labels := strings.Split(host, "."); len(labels) == 2 && fileLikeTLDs[labels[1]] {
			continue
		}
		if v.Domain != target {
			return true
		}
	}
	return false
}
