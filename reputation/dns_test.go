package reputation

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"net/netip"

	"github.com/miekg/dns"
)

// dnsServer is a real DNS server on 127.0.0.1 (UDP) answering A and TXT
// queries from maps, with NXDOMAIN for unknown names and no answer at all
// for names under a dead zone.
type dnsServer struct {
	addr string
	a    map[string][]string
	txt  map[string][]string
	dead []string

	mu      sync.Mutex
	queries []string
}

func startDNS(t *testing.T, a, txt map[string][]string, dead ...string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{addr: pc.LocalAddr().String(), a: a, txt: txt, dead: dead}
	srv := &dns.Server{PacketConn: pc, Handler: s}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

func (s *dnsServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	s.queries = append(s.queries, dns.TypeToString[q.Qtype]+" "+name)
	s.mu.Unlock()
	for _, d := range s.dead {
		if strings.HasSuffix(name, "."+d+".") {
			return // a dead list: never answers
		}
	}
	m := new(dns.Msg)
	m.SetReply(req)
	switch q.Qtype {
	case dns.TypeA:
		for _, v := range s.a[name] {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP(v)})
		}
	case dns.TypeTXT:
		if v, ok := s.txt[name]; ok {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: v})
		}
	}
	if len(m.Answer) == 0 && s.a[name] == nil && s.txt[name] == nil {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}

// resolver returns a *net.Resolver that sends every query to s.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.addr)
	}}
}

func TestCheckIPOverLoopbackDNS(t *testing.T) {
	s := startDNS(t, map[string][]string{
		"99.2.0.192.zen.test.": {"127.0.0.2"},
		"9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test.": {"127.0.0.4"},
		"99.2.0.192.codes.test.": {"127.0.0.10"},
	}, map[string][]string{
		"99.2.0.192.zen.test.": {"listed for spam"},
	}, "dead.test")
	c := &Checker{Resolver: s.resolver(), TXT: true, IPZones: []Zone{
		{Name: "zen.test", Weight: 2},
		{Name: "codes.test", Filter: "127.0.0.[2..9]"},
		{Name: "dead.test", Timeout: 200 * time.Millisecond},
	}}
	start := time.Now()
	got := c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.99"))
	took := time.Since(start)
	if got.Score != 2 || len(got.Listed) != 1 || got.Listed[0].Reason != "listed for spam" || got.Failed != 1 {
		t.Errorf("IPv4 over DNS: %+v", got)
	}
	if took > 800*time.Millisecond {
		t.Errorf("a dead list with a 200ms timeout held the check for %v", took)
	}
	got = c.CheckIP(context.Background(), netip.MustParseAddr("2001:db8::99"))
	if got.Score != 2 || len(got.Listed) != 1 || got.Listed[0].Codes[0] != "127.0.0.4" {
		t.Errorf("IPv6 over DNS: %+v", got)
	}
	got = c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.100"))
	if got.Score != 0 || len(got.Listed) != 0 || got.Failed != 1 {
		t.Errorf("unlisted over DNS: %+v", got)
	}
}

func TestCheckURLsOverLoopbackDNS(t *testing.T) {
	s := startDNS(t, map[string][]string{
		"evil-login.com.multi.uribl.test.": {"127.0.0.2"},
		"grey.net.multi.uribl.test.":       {"127.0.0.4"},
		"7.113.0.203.multi.uribl.test.":    {"127.0.0.2"},
	}, nil)
	c := &Checker{Resolver: s.resolver(), URLZones: []Zone{{Name: "multi.uribl.test", Filter: "&2"}}}
	urls := ExtractURLs("Log in at https://secure.evil-login.com/x or http://203.0.113.7/a, see http://www.grey.net/ and https://fine.example.org/", "", 0)
	got := c.CheckURLs(context.Background(), urls)
	if len(got.Listed) != 2 || got.Lookups != 4 || len(got.Errors) != 0 {
		t.Fatalf("CheckURLs = %+v", got)
	}
	if l := got.Listed[0]; l.Domain != "203.0.113.7" || l.URL != "http://203.0.113.7/a" {
		t.Errorf("listing 0 = %+v", l)
	}
	if l := got.Listed[1]; l.Domain != "evil-login.com" || l.URL != "https://secure.evil-login.com/x" {
		t.Errorf("listing 1 = %+v", l)
	}
}
