package reputation

import (
	"net/netip"
	"testing"
)

func TestParseFilter(t *testing.T) {
	type probe struct {
		addr   string
		listed bool
	}
	cases := []struct {
		filter string
		probes []probe
	}{
		{"", []probe{{"127.0.0.2", true}, {"127.0.0.11", true}, {"127.1.2.3", true},
			{"127.0.0.1", false}, {"127.255.255.254", false}, {"10.0.0.2", false}}},
		{"127.0.0.2", []probe{{"127.0.0.2", true}, {"127.0.0.3", false}}},
		{"=127.0.0.2", []probe{{"127.0.0.2", true}, {"127.0.0.4", false}}},
		{"127.0.0.[2..11]", []probe{{"127.0.0.2", true}, {"127.0.0.11", true}, {"127.0.0.12", false}, {"127.0.0.1", false}}},
		{"127.0.0.[2;4;8]", []probe{{"127.0.0.4", true}, {"127.0.0.8", true}, {"127.0.0.3", false}}},
		{"127.0.0.[2;4..6;10]", []probe{{"127.0.0.5", true}, {"127.0.0.10", true}, {"127.0.0.7", false}}},
		{"127.0.[0..255].[1..3]", []probe{{"127.0.15.2", true}, {"127.0.15.0", false}}},
		{"127.*.*.2", []probe{{"127.9.9.2", true}, {"127.9.9.3", false}}},
		{"&0x08", []probe{{"127.0.0.8", true}, {"127.0.0.14", true}, {"127.0.0.2", false}}},
		{"&4", []probe{{"127.0.0.4", true}, {"127.0.0.6", true}, {"127.0.0.2", false}}},
		{"127.0.0.2, &0x80", []probe{{"127.0.0.2", true}, {"127.0.0.128", true}, {"127.0.0.4", false}}},
	}
	for _, c := range cases {
		f, err := ParseFilter(c.filter)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", c.filter, err)
			continue
		}
		for _, p := range c.probes {
			if got := f.Match(netip.MustParseAddr(p.addr)); got != p.listed {
				t.Errorf("filter %q on %s = %v, want %v", c.filter, p.addr, got, p.listed)
			}
		}
	}
	for _, bad := range []string{
		"127.0.0", "127.0.0.2.1", "127.0.0.256", "127.0.0.[2..]", "127.0.0.[11..2]",
		"127.0.0.2..11", "127.0.0.[2", "127.0.0.2]", "&0", "&zz", "127.0.0.-1", "127.0.0.[[2]]", "a.b.c.d", ",",
	} {
		if _, err := ParseFilter(bad); err == nil {
			t.Errorf("ParseFilter(%q) succeeded", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	deflt, _ := ParseFilter("")
	explicit, _ := ParseFilter("127.255.255.[0..255], 127.0.0.1")
	check := func(f Filter, addr string, listed, problem bool) {
		t.Helper()
		l, p := classify(f, netip.MustParseAddr(addr))
		if l != listed || (p != "") != problem {
			t.Errorf("classify(%s) = %v, %q; want listed %v problem %v", addr, l, p, listed, problem)
		}
	}
	check(deflt, "127.0.0.2", true, false)
	check(deflt, "127.255.255.254", false, true) // Spamhaus: public resolver
	check(deflt, "127.255.255.252", false, true)
	check(deflt, "127.0.0.1", false, true)          // URIBL/SURBL: refused
	check(deflt, "192.0.2.80", false, true)         // NXDOMAIN rewriting
	check(explicit, "127.255.255.254", false, true) // an error whatever the filter says
	check(explicit, "127.0.0.1", true, false)
	check(explicit, "127.0.0.2", false, false) // filtered out: not an error
	check(deflt, "::ffff:127.0.0.2", true, false)
}

func TestParseZone(t *testing.T) {
	cases := []struct {
		spec string
		want Zone
	}{
		{"zen.spamhaus.org", Zone{Name: "zen.spamhaus.org", Weight: 1}},
		{"Zen.Spamhaus.ORG.", Zone{Name: "zen.spamhaus.org", Weight: 1}},
		{"zen.spamhaus.org*3", Zone{Name: "zen.spamhaus.org", Weight: 3}},
		{"zen.spamhaus.org=127.0.0.[2..11]*3", Zone{Name: "zen.spamhaus.org", Weight: 3, Filter: "127.0.0.[2..11]"}},
		{"list.dnswl.org=127.0.[0..255].[1..3]*-5", Zone{Name: "list.dnswl.org", Weight: -5, Filter: "127.0.[0..255].[1..3]"}},
		{"multi.uribl.com=&0x0e", Zone{Name: "multi.uribl.com", Weight: 1, Filter: "&0x0e"}},
		{"b.barracudacentral.org=127.0.0.2*0.5", Zone{Name: "b.barracudacentral.org", Weight: 0.5, Filter: "127.0.0.2"}},
	}
	for _, c := range cases {
		got, err := ParseZone(c.spec)
		if err != nil || got != c.want {
			t.Errorf("ParseZone(%q) = %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "zen.spamhaus.org*x", "zen.spamhaus.org*0", "zen.spamhaus.org*NaN", "zen..org", "zen.spamhaus.org=127.0.0", "bad zone.org", "a/b.org"} {
		if z, err := ParseZone(bad); err == nil {
			t.Errorf("ParseZone(%q) = %+v, want an error", bad, z)
		}
	}
}

func TestReverseIP(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.99":         "99.2.0.192",
		"::ffff:192.0.2.99":  "99.2.0.192",
		"2001:db8:1:2::abcd": "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2",
	} {
		if got := ReverseIP(netip.MustParseAddr(in)); got != want {
			t.Errorf("ReverseIP(%s) = %s, want %s", in, got, want)
		}
	}
}
