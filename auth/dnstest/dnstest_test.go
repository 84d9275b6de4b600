package dnstest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const zone = `
$ORIGIN example.com.
$TTL 300
@          SOA  ns hostmaster 1 3600 600 86400 120
@          TXT  "v=spf1 -all"
@       60 MX   10 mx
mx         A    192.0.2.1
mx         AAAA 2001:db8::1
sel._domainkey TXT "v=DKIM1; k=ed25519; " "p=abc"
alias      CNAME mx
loop1      CNAME loop2
loop2      CNAME loop1
*.bl       A    127.0.0.2
1.2.0.192.in-addr.arpa. PTR mx.example.com.
`

func ask(t *testing.T, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 300 * time.Millisecond}
	resp, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return resp
}

func TestServerAnswers(t *testing.T) {
	s := StartServer(t, zone)
	check := func(name string, qtype uint16, rcode int, want ...string) *dns.Msg {
		t.Helper()
		resp := ask(t, s, "udp", name, qtype)
		var got []string
		for _, rr := range resp.Answer {
			got = append(got, strings.ReplaceAll(rr.String(), "\t", " "))
		}
		if resp.Rcode != rcode || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s %s = %s %q, want %s %q", name, dns.TypeToString[qtype], dns.RcodeToString[resp.Rcode], got,
				dns.RcodeToString[rcode], want)
		}
		return resp
	}
	check("example.com.", dns.TypeTXT, dns.RcodeSuccess, `example.com. 300 IN TXT "v=spf1 -all"`)
	check("EXAMPLE.com.", dns.TypeMX, dns.RcodeSuccess, `example.com. 60 IN MX 10 mx.example.com.`)
	check("sel._domainkey.example.com.", dns.TypeTXT, dns.RcodeSuccess, `sel._domainkey.example.com. 300 IN TXT "v=DKIM1; k=ed25519; " "p=abc"`)
	check("alias.example.com.", dns.TypeA, dns.RcodeSuccess,
		`alias.example.com. 300 IN CNAME mx.example.com.`, `mx.example.com. 300 IN A 192.0.2.1`)
	check("alias.example.com.", dns.TypeCNAME, dns.RcodeSuccess, `alias.example.com. 300 IN CNAME mx.example.com.`)
	check("4.3.2.1.bl.example.com.", dns.TypeA, dns.RcodeSuccess, `4.3.2.1.bl.example.com. 300 IN A 127.0.0.2`)
	check("1.2.0.192.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, `1.2.0.192.in-addr.arpa. 300 IN PTR mx.example.com.`)
	check("loop1.example.com.", dns.TypeA, dns.RcodeServerFailure)

	nx := check("nx.example.com.", dns.TypeA, dns.RcodeNameError)
	nodata := check("mx.example.com.", dns.TypeTXT, dns.RcodeSuccess)
	ent := check("_domainkey.example.com.", dns.TypeTXT, dns.RcodeSuccess) // empty non-terminal
	for _, resp := range []*dns.Msg{nx, nodata, ent} {
		if len(resp.Ns) != 1 {
			t.Fatalf("negative answer without SOA: %v", resp)
		}
		soa := resp.Ns[0].(*dns.SOA)
		if soa.Hdr.Ttl != 120 || soa.Minttl != 120 { // min(300, 120)
			t.Errorf("SOA TTL %d, MINIMUM %d; want 120 (RFC 2308)", soa.Hdr.Ttl, soa.Minttl)
		}
	}
	// Outside the zone: NXDOMAIN with the synthetic SOA.
	other := check("nowhere.test.", dns.TypeA, dns.RcodeNameError)
	s.SetNegativeTTL(42 * time.Second)
	other = check("nowhere.test.", dns.TypeA, dns.RcodeNameError)
	if soa, ok := other.Ns[0].(*dns.SOA); !ok || soa.Minttl != 42 || soa.Hdr.Ttl != 42 {
		t.Errorf("synthetic SOA %v", other.Ns)
	}
}

func TestServerKnobs(t *testing.T) {
	s := StartServer(t, zone)
	s.ServFail("TXT example.com.")
	if r := ask(t, s, "udp", "example.com.", dns.TypeTXT); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("ServFail TXT: %s", dns.RcodeToString[r.Rcode])
	}
	if r := ask(t, s, "udp", "example.com.", dns.TypeMX); r.Rcode != dns.RcodeSuccess {
		t.Errorf("ServFail TXT hit MX: %s", dns.RcodeToString[r.Rcode])
	}
	s.Heal("TXT example.com.")
	s.Timeout("mx.example.com")
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion("mx.example.com.", dns.TypeA)
		c := &dns.Client{Net: network, Timeout: 100 * time.Millisecond}
		if _, _, err := c.Exchange(m, s.Addr()); err == nil {
			t.Errorf("Timeout knob answered over %s", network)
		}
	}
	s.Heal("mx.example.com.")
	if r := ask(t, s, "udp", "mx.example.com.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("after Heal: %v", r)
	}
	var nets []string
	for _, q := range s.Queries() {
		if q.Name == "mx.example.com." {
			nets = append(nets, q.Net)
		}
	}
	if strings.Join(nets, ",") != "udp,tcp,udp" {
		t.Errorf("queries recorded %v", nets)
	}
}

func TestServerTruncation(t *testing.T) {
	s := StartServer(t, "big.example. TXT "+strings.Repeat(`"`+strings.Repeat("x", 250)+`" `, 4))
	udp := ask(t, s, "udp", "big.example.", dns.TypeTXT)
	if !udp.Truncated {
		t.Errorf("1 KB answer over UDP without EDNS0 not truncated")
	}
	m := new(dns.Msg)
	m.SetQuestion("big.example.", dns.TypeTXT)
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp", UDPSize: 4096}
	edns, _, err := c.Exchange(m, s.Addr())
	if err != nil || edns.Truncated || len(edns.Answer) != 1 {
		t.Errorf("EDNS0 4096: truncated=%v err=%v", edns != nil && edns.Truncated, err)
	}
	tcp := ask(t, s, "tcp", "big.example.", dns.TypeTXT)
	if tcp.Truncated || len(tcp.Answer) != 1 || len(strings.Join(tcp.Answer[0].(*dns.TXT).Txt, "")) != 1000 {
		t.Errorf("TCP answer incomplete: %v", tcp.Answer)
	}
}

func TestServerZones(t *testing.T) {
	if _, err := NewServer("example.com. IN TXT"); err == nil {
		t.Error("broken zone accepted")
	}
	s := StartServer(t, "a.example. A 192.0.2.1")
	if err := s.AddRecords("b.example. A 192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	if r := ask(t, s, "udp", "b.example.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("AddRecords: %v", r)
	}
	if err := s.SetZone("c.example. A 192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	if r := ask(t, s, "udp", "a.example.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("SetZone kept old records: %v", r)
	}
	if r := ask(t, s, "udp", "c.example.", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 3600 {
		t.Errorf("default TTL: %v", r)
	}
}

func TestResolverFake(t *testing.T) {
	r := &Resolver{
		TXT:       map[string][]string{"Example.COM": {"v=spf1 -all"}, "empty.example.": {}},
		A:         map[string][]string{"mx.example.com.": {"192.0.2.1", "bogus"}},
		AAAA:      map[string][]string{"mx.example.com.": {"2001:db8::1"}},
		MX:        map[string][]*net.MX{"example.com.": {{Host: "mx.example.com", Pref: 10}}},
		PTR:       map[string][]string{"192.0.2.1": {"mx.example.com"}, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6.arpa.": {"v6.example.com."}},
		CNAME:     map[string]string{"alias.example.com.": "mx.example.com.", "l1.example.": "l2.example.", "l2.example.": "l1.example."},
		Temporary: []string{"txt flaky.example.", "down.example."},
		NotFound:  []string{"a mx.example.com."},
	}
	ctx := context.Background()
	isErr := func(err error, notFound, temporary bool) bool {
		var de *net.DNSError
		return errors.As(err, &de) && de.IsNotFound == notFound && de.IsTemporary == temporary
	}
	if txt, err := r.LookupTXT(ctx, "example.com."); err != nil || len(txt) != 1 {
		t.Errorf("TXT case/dot-insensitive: %v %v", txt, err)
	}
	if _, err := r.LookupTXT(ctx, "empty.example"); !isErr(err, true, false) {
		t.Errorf("empty TXT list: %v", err)
	}
	if _, err := r.LookupTXT(ctx, "flaky.example"); !isErr(err, false, true) {
		t.Errorf("Temporary txt: %v", err)
	}
	if _, err := r.LookupNetIP(ctx, "ip4", "down.example"); !isErr(err, false, true) {
		t.Errorf("Temporary all types: %v", err)
	}
	if _, err := r.LookupNetIP(ctx, "ip4", "mx.example.com"); !isErr(err, true, false) {
		t.Errorf("NotFound a: %v", err)
	}
	if ips, err := r.LookupNetIP(ctx, "ip", "alias.example.com"); err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("ip via CNAME with A listed NotFound: %v %v", ips, err)
	}
	if _, err := r.LookupNetIP(ctx, "ip4", "l1.example"); !isErr(err, false, true) {
		t.Errorf("CNAME loop: %v", err)
	}
	if mx, err := r.LookupMX(ctx, "example.com"); err != nil || mx[0].Host != "mx.example.com." {
		t.Errorf("MX: %v %v", mx, err)
	}
	if names, err := r.LookupAddr(ctx, "::ffff:192.0.2.1"); err != nil || names[0] != "mx.example.com." {
		t.Errorf("PTR by IP: %v %v", names, err)
	}
	if names, err := r.LookupAddr(ctx, "2001:db8::1"); err != nil || names[0] != "v6.example.com." {
		t.Errorf("PTR by reverse name: %v %v", names, err)
	}
	if _, err := r.LookupAddr(ctx, "192.0.2.9"); !isErr(err, true, false) {
		t.Errorf("PTR missing: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.LookupTXT(cancelled, "example.com"); !isErr(err, false, true) {
		t.Errorf("cancelled context: %v", err)
	}
	q := r.Queries()
	if len(q) == 0 || q[0] != "txt example.com." {
		t.Errorf("queries %v", q)
	}
}
