package dnstest

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Server is a DNS server on 127.0.0.1 (UDP and TCP on the same port) that
// answers from a zone given as RFC 1035 master-file text. It behaves like a
// recursive resolver that knows only that zone: it answers every name,
// follows CNAMEs inside the zone, expands wildcards, answers NXDOMAIN or
// NODATA with an SOA (so negative answers can be cached per RFC 2308), and
// truncates UDP answers that exceed 512 bytes or the client's EDNS0 size,
// so that clients must retry over TCP.
//
// Point the gateway's dns.servers (or resolver.Config.Servers) at Addr():
//
//	srv := dnstest.StartServer(t, `
//	$ORIGIN example.com.
//	$TTL 300
//	@              TXT   "v=spf1 ip4:192.0.2.0/24 -all"
//	_dmarc         TXT   "v=DMARC1; p=reject"
//	sel._domainkey TXT   "v=DKIM1; k=ed25519; p=..."
//	@              MX    10 mx
//	mx             A     192.0.2.1
//	2.0.192.in-addr.arpa. PTR mx.example.com.  ; absolute names work too
//	`)
//	srv.ServFail("broken.example.com.")  // every query for it: SERVFAIL
//	srv.Timeout("slow.example.com.")     // every query for it: no answer
//
// Names without $ORIGIN are relative to the root, so write them fully
// qualified. Records without a TTL get 3600 unless $TTL says otherwise.
// Negative answers carry the zone's SOA if it has one covering the name,
// else a synthetic SOA with NegativeTTL as its minimum.
type Server struct {
	udp, tcp *dns.Server
	addr     string

	mu          sync.Mutex
	records     map[string][]dns.RR // by lower-case owner name
	names       map[string]bool     // owners and their ancestors
	servfail    map[string]bool     // "name." or "TYPE name."
	timeout     map[string]bool
	negativeTTL uint32
	queries     []Query
}

// Query is one question the Server received.
type Query struct {
	Name string // as asked, lower case, fully qualified (miekg/dns presentation form)
	Type string // "A", "TXT", …
	Net  string // "udp" or "tcp"
}

// NewServer parses zone and starts serving it on 127.0.0.1 with a port
// chosen by the system. Close it when done.
func NewServer(zone string) (*Server, error) {
	s := &Server{negativeTTL: 60, servfail: map[string]bool{}, timeout: map[string]bool{}}
	if err := s.SetZone(zone); err != nil {
		return nil, err
	}
	var err error
	for range 10 { // the UDP port may be taken for TCP; try another
		if err = s.listen(); err == nil {
			return s, nil
		}
	}
	return nil, err
}

// StartServer is NewServer for tests: it fails tb on error and closes the
// server when the test ends.
func StartServer(tb testing.TB, zone string) *Server {
	tb.Helper()
	s, err := NewServer(zone)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func (s *Server) listen() error {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := pc.LocalAddr().String()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return err
	}
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: l, Handler: h, ReadTimeout: 5 * time.Second}
	s.addr = addr
	var started sync.WaitGroup
	started.Add(2)
	s.udp.NotifyStartedFunc = started.Done
	s.tcp.NotifyStartedFunc = started.Done
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	started.Wait()
	return nil
}

// Addr returns the "127.0.0.1:port" the server answers on, UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Close stops the server.
func (s *Server) Close() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}

// SetZone replaces the served records with those of zone.
func (s *Server) SetZone(zone string) error {
	rrs, err := parseZone(zone)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records, s.names = map[string][]dns.RR{}, map[string]bool{}
	s.add(rrs)
	return nil
}

// AddRecords adds the records of zone to those served.
func (s *Server) AddRecords(zone string) error {
	rrs, err := parseZone(zone)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(rrs)
	return nil
}

// SetNegativeTTL sets the minimum of the synthetic SOA sent with negative
// answers for names no SOA of the zone covers (default 60 seconds).
func (s *Server) SetNegativeTTL(ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.negativeTTL = uint32(ttl / time.Second)
}

func parseZone(zone string) ([]dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "zone")
	zp.SetDefaultTTL(3600)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("dnstest: parse zone: %w", err)
	}
	return rrs, nil
}

func (s *Server) add(rrs []dns.RR) {
	for _, rr := range rrs {
		name := canon(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
		for n := name; n != ""; {
			s.names[n] = true
			_, rest, ok := strings.Cut(n, ".")
			if !ok || rest == "" {
				break
			}
			n = rest
		}
	}
}

// ServFail makes every query for name answer SERVFAIL. An entry may be
// "name." (all types) or "TYPE name." ("TXT example.com.").
func (s *Server) ServFail(name string) { s.knob(s.servfail, name, true) }

// Timeout makes every query for name go unanswered, so that clients time
// out. Same syntax as ServFail.
func (s *Server) Timeout(name string) { s.knob(s.timeout, name, true) }

// Heal undoes ServFail and Timeout for name.
func (s *Server) Heal(name string) {
	s.knob(s.servfail, name, false)
	s.knob(s.timeout, name, false)
}

func (s *Server) knob(m map[string]bool, name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := knobKey(name)
	if on {
		m[key] = true
	} else {
		delete(m, key)
	}
}

func knobKey(entry string) string {
	if typ, name, ok := strings.Cut(strings.TrimSpace(entry), " "); ok {
		return strings.ToUpper(typ) + " " + canon(strings.TrimSpace(name))
	}
	return canon(strings.TrimSpace(entry))
}

// canon returns name fully qualified, lower case and escaped the way
// miekg/dns prints names, so that "a\032b." and "a\ b." are one key.
func canon(name string) string {
	var buf [256]byte
	name = dns.Fqdn(name)
	if n, err := dns.PackDomainName(name, buf[:], 0, nil, false); err == nil {
		if s, _, err := dns.UnpackDomainName(buf[:n], 0); err == nil {
			name = s
		}
	}
	return strings.ToLower(name)
}

// Queries returns the questions received so far, in order.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

// ResetQueries forgets the recorded questions.
func (s *Server) ResetQueries() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = nil
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name, typ := canon(q.Name), dns.TypeToString[q.Qtype]
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	s.mu.Lock()
	s.queries = append(s.queries, Query{Name: name, Type: typ, Net: network})
	timeout := s.timeout[name] || s.timeout[typ+" "+name]
	servfail := s.servfail[name] || s.servfail[typ+" "+name]
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	if servfail {
		resp.Rcode = dns.RcodeServerFailure
	} else {
		resp.Answer, resp.Rcode = s.resolve(name, q.Qtype)
		if len(resp.Answer) == 0 || resp.Rcode == dns.RcodeNameError {
			resp.Ns = []dns.RR{s.soaFor(name)}
		}
	}
	s.mu.Unlock()
	if timeout {
		return // no answer at all: the client times out
	}
	if network == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
			resp.SetEdns0(uint16(size), false)
		}
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

// resolve answers name/qtype from the zone, following CNAMEs inside it
// and expanding wildcards. It returns the answer section and the rcode.
func (s *Server) resolve(name string, qtype uint16) ([]dns.RR, int) {
	var answer []dns.RR
	seen := map[string]bool{name: true}
	for {
		rrs := s.lookup(name)
		var matched []dns.RR
		var cname *dns.CNAME
		for _, rr := range rrs {
			if rr.Header().Rrtype == qtype || qtype == dns.TypeANY {
				matched = append(matched, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		switch {
		case len(matched) > 0:
			return append(answer, matched...), dns.RcodeSuccess
		case cname != nil:
			name = canon(cname.Target)
			if seen[name] {
				return nil, dns.RcodeServerFailure // CNAME loop
			}
			seen[name] = true
			answer = append(answer, cname)
		case len(rrs) > 0 || s.names[name]:
			return answer, dns.RcodeSuccess // NODATA
		default:
			return answer, dns.RcodeNameError
		}
	}
}

// lookup returns the records owned by name, or synthesized from the
// wildcard of its closest encloser (RFC 4592) when name does not exist.
func (s *Server) lookup(name string) []dns.RR {
	if rrs := s.records[name]; len(rrs) > 0 || s.names[name] {
		return rrs
	}
	for n := name; ; {
		_, parent, ok := strings.Cut(n, ".")
		if !ok || parent == "" {
			return nil
		}
		if s.names[parent] {
			var out []dns.RR
			for _, rr := range s.records["*."+parent] {
				c := dns.Copy(rr)
				c.Header().Name = name
				out = append(out, c)
			}
			return out
		}
		n = parent
	}
}

// soaFor returns the SOA for a negative answer about name: the zone's SOA
// with the longest owner that is a suffix of name, else a synthetic one;
// its TTL is min(TTL, MINIMUM) as RFC 2308 §3 asks.
func (s *Server) soaFor(name string) dns.RR {
	var best *dns.SOA
	for owner, rrs := range s.records {
		if name != owner && !strings.HasSuffix(name, "."+owner) && owner != "." {
			continue
		}
		for _, rr := range rrs {
			if soa, ok := rr.(*dns.SOA); ok && (best == nil || len(owner) > len(best.Hdr.Name)) {
				best = soa
			}
		}
	}
	if best == nil {
		best = &dns.SOA{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.negativeTTL},
			Ns: "ns.dnstest.", Mbox: "hostmaster.dnstest.", Serial: 1, Refresh: 3600, Retry: 600,
			Expire: 86400, Minttl: s.negativeTTL}
	}
	soa := dns.Copy(best).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return soa
}
