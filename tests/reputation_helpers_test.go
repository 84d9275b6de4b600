package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailguard/mailguard/auth/dnstest"
)

// Addresses of the reputation tests (documentation ranges, looked up like
// any public address).
const (
	listedIP  = "203.0.113.66" // in bl.test
	cleanIP   = "203.0.113.99" // in no list
	allowedIP = "198.51.100.7" // in bl.test, but in reputation.allow_networks
	allowNet  = "198.51.100.0/24"
	idnHost   = "xn--pple-43d.example" // аpple.example, Cyrillic а
)

// reputationZone serves the test lists: bl.test (client IPs) and
// uribl.test (URL domains). Nothing else exists, so SPF and DMARC find
// no records.
const reputationZone = `
$TTL 300
66.113.0.203.bl.test.            A   127.0.0.2
66.113.0.203.bl.test.            TXT "203.0.113.66 sends spam (e2e)"
7.100.51.198.bl.test.            A   127.0.0.2
evil-phish.example.uribl.test.   A   127.0.0.2
xn--pple-43d.example.uribl.test. A   127.0.0.4
`

// startReputationDNS starts the loopback DNS server with the test lists.
func startReputationDNS(t *testing.T) *dnstest.Server {
	t.Helper()
	return dnstest.StartServer(t, reputationZone)
}

// reputationBlock is a reputation policy block over the test lists; extra
// lines go inside it.
func reputationBlock(extra ...string) string {
	var b strings.Builder
	b.WriteString("reputation {\n  zone \"bl.test\" {\n    weight = 3\n  }\n  uribl = [\"uribl.test\"]\n")
	fmt.Fprintf(&b, "  allow_networks = [%q]\n", allowNet)
	for _, l := range extra {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// asked reports whether the DNS server received a question for name.
func asked(s *dnstest.Server, name string) bool {
	for _, q := range s.Queries() {
		if q.Name == name {
			return true
		}
	}
	return false
}

// path walks a decoded JSON document: keys for objects, "#N" for arrays.
func path(t *testing.T, doc any, keys ...string) any {
	t.Helper()
	cur := doc
	for i, k := range keys {
		switch v := cur.(type) {
		case map[string]any:
			cur = v[k]
		case []any:
			var n int
			if _, err := fmt.Sscanf(k, "#%d", &n); err != nil || n >= len(v) {
				t.Fatalf("JSON path %v: no element %s", keys[:i+1], k)
			}
			cur = v[n]
		default:
			t.Fatalf("JSON path %v: %T is not a container", keys[:i+1], cur)
		}
	}
	return cur
}

// num is a JSON number at path (0 when absent).
func num(t *testing.T, doc any, keys ...string) float64 {
	t.Helper()
	f, _ := path(t, doc, keys...).(float64)
	return f
}

// timed runs f and returns how long it took.
func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}
