package auth

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mailguard/mailguard/auth/dnstest"
)

// The OpenSPF RFC 7208 test suite (release 2014.04), read as published.
// Each YAML document is a section with its own zone.
type spfSuiteSection struct {
	Description string                  `yaml:"description"`
	Tests       map[string]spfSuiteCase `yaml:"tests"`
	ZoneData    map[string][]yaml.Node  `yaml:"zonedata"`
}

type spfSuiteCase struct {
	Spec        yaml.Node `yaml:"spec"`
	Helo        string    `yaml:"helo"`
	Host        string    `yaml:"host"`
	MailFrom    string    `yaml:"mailfrom"`
	Result      yaml.Node `yaml:"result"` // one result or a list of accepted ones
	Explanation string    `yaml:"explanation"`
}

// spfSuiteDeviations lists the cases we answer differently on purpose, with
// the RFC section that justifies it. It is empty: every case passes.
var spfSuiteDeviations = map[string]string{}

func TestSPFSuiteRFC7208(t *testing.T) {
	f, err := os.Open("testdata/rfc7208-tests.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	total, passed := 0, 0
	seen := map[string]bool{}
	for {
		var sec spfSuiteSection
		if err := dec.Decode(&sec); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode suite: %v", err)
		}
		r := suiteResolver(t, sec.ZoneData)
		for name, tc := range sec.Tests {
			if seen[name] {
				t.Fatalf("duplicate case name %q", name)
			}
			seen[name] = true
			total++
			ok := t.Run(name, func(t *testing.T) {
				if why, ok := spfSuiteDeviations[name]; ok {
					t.Skipf("deliberate deviation: %s", why)
				}
				runSuiteCase(t, r, tc)
			})
			if ok {
				passed++
			}
		}
	}
	t.Logf("RFC 7208 suite: %d of %d cases pass, %d deviations", passed, total, len(spfSuiteDeviations))
	if total != 203 {
		t.Errorf("suite has %d cases, want 203", total)
	}
}

func runSuiteCase(t *testing.T, r *dnstest.Resolver, tc spfSuiteCase) {
	t.Helper()
	ip, err := netip.ParseAddr(tc.Host)
	if err != nil {
		t.Fatalf("bad host %q: %v", tc.Host, err)
	}
	in := SPFInput{IP: ip, HELO: tc.Helo, MailFrom: tc.MailFrom, Receiver: "mx.mailguard.test"}
	got, err := CheckSPF(context.Background(), r, in)
	want := nodeStrings(&tc.Result)
	if !slices.Contains(want, string(got.Status)) {
		t.Fatalf("CheckSPF(%s, helo %q, from %q) = %s (%s; err %v), want one of %v",
			tc.Host, tc.Helo, tc.MailFrom, got.Status, got.Reason, err, want)
	}
	if tc.Explanation == "" || got.Status != SPFFail {
		return
	}
	wantExp := tc.Explanation
	if wantExp == "DEFAULT" {
		wantExp = "" // no exp= text: the caller's default applies
	}
	// Hex digits of %{i} nibbles: the suite writes them upper case, RFC
	// 7208 §7.4 (example "1.0.b.c…ip6") lower case; DNS ignores case.
	if !strings.EqualFold(got.Explanation, wantExp) {
		t.Errorf("explanation = %q, want %q", got.Explanation, wantExp)
	}
}

// suiteResolver turns a section's zonedata into a fake resolver, with the
// suite's driver conventions: SPF (type 99) records stand in for TXT when
// the name has no TXT record ("TXT: NONE" means none), TIMEOUT makes every
// query without data at that name time out, and PTR data live at
// in-addr.arpa / ip6.arpa names.
func suiteResolver(t *testing.T, zone map[string][]yaml.Node) *dnstest.Resolver {
	t.Helper()
	r := &dnstest.Resolver{
		TXT: map[string][]string{}, A: map[string][]string{}, AAAA: map[string][]string{},
		MX: map[string][]*net.MX{}, PTR: map[string][]string{}, CNAME: map[string]string{},
	}
	for name, recs := range zone {
		var spf []string
		hasTXT, timeout := false, false
		for i := range recs {
			n := &recs[i]
			if n.Kind == yaml.ScalarNode {
				switch n.Value {
				case "TIMEOUT":
					timeout = true
				default:
					t.Fatalf("%s: unknown zone entry %q", name, n.Value)
				}
				continue
			}
			if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
				t.Fatalf("%s: unexpected zone entry", name)
			}
			typ, val := n.Content[0].Value, n.Content[1]
			switch typ {
			case "SPF":
				spf = append(spf, strings.Join(nodeStrings(val), ""))
			case "TXT":
				hasTXT = true
				if val.Kind == yaml.ScalarNode && val.Value == "NONE" {
					continue
				}
				r.TXT[name] = append(r.TXT[name], strings.Join(nodeStrings(val), ""))
			case "A":
				r.A[name] = append(r.A[name], nodeStrings(val)...)
			case "AAAA":
				r.AAAA[name] = append(r.AAAA[name], nodeStrings(val)...)
			case "MX":
				mx := nodeStrings(val)
				if len(mx) != 2 {
					t.Fatalf("%s: bad MX %v", name, mx)
				}
				pref := 0
				for _, c := range mx[0] {
					pref = pref*10 + int(c-'0')
				}
				host := mx[1]
				if host == "" {
					host = "."
				}
				r.MX[name] = append(r.MX[name], &net.MX{Host: host, Pref: uint16(pref)})
			case "PTR":
				r.PTR[name] = append(r.PTR[name], nodeStrings(val)...)
			case "CNAME":
				r.CNAME[name] = val.Value
			default:
				t.Fatalf("%s: unknown record type %s", name, typ)
			}
		}
		if !hasTXT {
			r.TXT[name] = append(r.TXT[name], spf...)
		}
		if timeout {
			for typ, m := range map[string]int{"txt": len(r.TXT[name]), "a": len(r.A[name]),
				"aaaa": len(r.AAAA[name]), "mx": len(r.MX[name]), "ptr": len(r.PTR[name])} {
				if m == 0 {
					r.Temporary = append(r.Temporary, typ+" "+name)
				}
			}
		}
	}
	return r
}

// nodeStrings returns a scalar as a one-element list, a sequence as a list.
func nodeStrings(n *yaml.Node) []string {
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		out = append(out, c.Value)
	}
	return out
}
