package reputation

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/reason"
)

func uriblResolver() *dnstest.Resolver {
	return &dnstest.Resolver{A: map[string][]string{
		"evil-login.com.multi.uribl.test.":       {"127.0.0.2"},  // black
		"grey-sender.net.multi.uribl.test.":      {"127.0.0.4"},  // grey only
		"phish.example.multi.surbl.test.":        {"127.0.0.8"},  // PH
		"refused.example.multi.uribl.test.":      {"127.0.0.1"},  // query refused
		"9.113.0.203.multi.uribl.test.":          {"127.0.0.2"},  // IP literal
		"evil-login.com.multi.surbl.test.":       {"127.0.0.64"}, // ABUSE
		"allowed-corp.example.multi.uribl.test.": {"127.0.0.2"},
	}}
}

func TestCheckURLsListedDomains(t *testing.T) {
	r := uriblResolver()
	c := &Checker{Resolver: r,
		URLZones: []Zone{
			{Name: "multi.uribl.test", Filter: "&0x02", Weight: 5},
			{Name: "multi.surbl.test", Filter: "&0x08, &0x40"},
		},
		AllowDomains: []string{"allowed-corp.example"},
	}
	urls := ExtractURLs("See https://www.evil-login.com/a, https://cdn.evil-login.com/b, http://grey-sender.net/, "+
		"http://203.0.113.9/x, https://refused.example/, https://phish.example/p, https://mail.allowed-corp.example/ok", "", 0)
	got := c.CheckURLs(context.Background(), urls)
	want := []Listing{
		{Zone: "multi.surbl.test", Codes: []string{"127.0.0.64"}, Weight: 1, Domain: "evil-login.com", URL: "https://www.evil-login.com/a"},
		{Zone: "multi.surbl.test", Codes: []string{"127.0.0.8"}, Weight: 1, Domain: "phish.example", URL: "https://phish.example/p"},
		{Zone: "multi.uribl.test", Codes: []string{"127.0.0.2"}, Weight: 5, Domain: "203.0.113.9", URL: "http://203.0.113.9/x"},
		{Zone: "multi.uribl.test", Codes: []string{"127.0.0.2"}, Weight: 5, Domain: "evil-login.com", URL: "https://www.evil-login.com/a"},
	}
	if diff := cmp.Diff(want, got.Listed); diff != "" {
		t.Errorf("Listed (-want +got):\n%s", diff)
	}
	if got.Score != 12 || got.Count != 7 || got.Domains != 6 || got.IPLiterals != 1 {
		t.Errorf("facts: %+v", got)
	}
	// evil-login.com once per zone despite two URLs; the allow-listed
	// domain never asked: 5 keys × 2 zones.
	if got.Lookups != 10 {
		t.Errorf("Lookups = %d, want 10", got.Lookups)
	}
	for _, q := range r.Queries() {
		if strings.Contains(q, "allowed-corp") {
			t.Errorf("allow-listed domain was looked up: %s", q)
		}
	}
	if len(got.Errors) != 1 || !strings.Contains(got.Errors[0], "refused") {
		t.Errorf("Errors = %v, want the refused query", got.Errors)
	}
	f := got.Findings()
	if len(f) != 4 || f[0].Tag != reason.URLBlocklisted ||
		f[0].Detail != "multi.surbl.test (127.0.0.64): https://www.evil-login.com/a" {
		t.Errorf("Findings = %+v", f)
	}
}

func TestCheckURLsLocalBlockListAndShorteners(t *testing.T) {
	c := &Checker{Resolver: &dnstest.Resolver{},
		BlockDomains: []string{"Bad-Domain.example.", "*.phishing.test", "аррӏе.com"},
		Shorteners:   []string{"go.corp-short.example"},
	}
	urls := ExtractURLs("", `<a href="https://login.bad-domain.example/x">a</a>
		<a href="https://bad-domain.example.org/">not a subdomain</a>
		<a href="https://x.y.phishing.test/">b</a>
		<a href="https://xn--80ak6aa92e.com/">c</a>
		<a href="https://bit.ly/abc">d</a> <a href="https://go.corp-short.example/q">e</a>`, 0)
	got := c.CheckURLs(context.Background(), urls)
	var details []string
	for _, f := range got.Findings() {
		details = append(details, f.Detail)
	}
	want := []string{
		"local block list (bad-domain.example): https://login.bad-domain.example/x",
		"local block list (phishing.test): https://x.y.phishing.test/",
		"local block list (xn--80ak6aa92e.com): https://xn--80ak6aa92e.com/",
	}
	if diff := cmp.Diff(want, details); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if got.Shorteners != 2 || got.Punycode != 1 || got.Score != 3 {
		t.Errorf("facts: %+v", got)
	}
	if got.Lookups != 0 {
		t.Errorf("no URL zones, but %d lookups", got.Lookups)
	}
}

func TestCheckURLsBounded(t *testing.T) {
	r := &dnstest.Resolver{}
	c := &Checker{Resolver: r, MaxURLs: 30, MaxLookups: 10,
		URLZones: []Zone{{Name: "a.test"}, {Name: "b.test"}}}
	var text strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&text, "https://host%d.example%d.com/ ", i, i)
	}
	got := c.CheckURLs(context.Background(), ExtractURLs(text.String(), "", 1000))
	if got.Count != 30 || got.Lookups != 10 || got.Unchecked != 25 {
		t.Errorf("Count %d Lookups %d Unchecked %d; want 30, 10, 25", got.Count, got.Lookups, got.Unchecked)
	}
	if n := len(r.Queries()); n != 10 {
		t.Errorf("%d queries made, want 10", n)
	}
}

func TestCheckURLsSkipsSingleLabelHosts(t *testing.T) {
	r := &dnstest.Resolver{}
	c := &Checker{Resolver: r, URLZones: []Zone{{Name: "a.test"}}}
	got := c.CheckURLs(context.Background(), ExtractURLs("http://intranet/wiki http://localhost:8080/", "", 0))
	if got.Count != 2 || got.Lookups != 0 || len(r.Queries()) != 0 {
		t.Errorf("single-label hosts looked up: %+v %v", got, r.Queries())
	}
}
