package auth

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mailguard/mailguard/reason"
)

// Defaults of the Verifier options.
const (
	DefaultMaxDKIMSignatures = 5
	DefaultMaxHeaderBytes    = 1 << 20
	DefaultSPFTimeout        = 20 * time.Second // RFC 7208 §4.6.4: at least 20 s
	DefaultTimeout           = 30 * time.Second
)

// Input is what Verify needs about one inbound message.
type Input struct {
	ClientIP netip.Addr
	HELO     string
	MailFrom string    // envelope sender without <>; "" for the null sender
	Message  io.Reader // the full message as received (header + body, CRLF)
}

// Verifier checks SPF, DKIM and DMARC. Its zero value (with a Resolver) is
// ready to use; the options have documented zero values. It is safe for
// concurrent use.
type Verifier struct {
	// Resolver answers the DNS queries; nil means net.DefaultResolver.
	Resolver Resolver
	// Hostname is this gateway's name, for the %{r} macro of SPF
	// explanations; empty means "unknown".
	Hostname string
	// MaxDKIMSignatures caps the signatures verified per message (a DoS
	// guard); later ones are reported as neutral. Zero means 5.
	MaxDKIMSignatures int
	// MaxHeaderBytes caps the header block read into memory; a larger
	// header leaves its DKIM signatures unverified. Zero means 1 MiB.
	MaxHeaderBytes int
	// SPFTimeout bounds each SPF evaluation; reaching it is a temperror.
	// Zero means 20 s.
	SPFTimeout time.Duration
	// Timeout bounds the whole of Verify, so that slow DNS cannot hold an
	// SMTP transaction open; lookups cut short give temperror. Zero means
	// 30 s.
	Timeout time.Duration
	// Now is the clock for the SPF %{t} macro; nil means time.Now.
	Now func() time.Time
	// Rand returns a uniform integer in [0, n) for DMARC pct sampling; nil
	// means math/rand/v2.IntN.
	Rand func(n int) int
}

// Results is the outcome of Verify. Its JSON is what `mailguard scan
// --json` shows under "auth".
type Results struct {
	// SPF is the MAIL FROM identity, or the HELO identity for the null
	// sender: the one DMARC aligns.
	SPF SPFResult `json:"spf"`
	// HELO is the HELO identity (RFC 7208 §2.3).
	HELO SPFResult `json:"helo"`
	// DKIM has one result per DKIM-Signature field, top to bottom.
	DKIM []DKIMResult `json:"dkim"`
	// DKIMNotVerified counts signatures beyond MaxDKIMSignatures (also
	// listed in DKIM as neutral).
	DKIMNotVerified int         `json:"dkim_not_verified,omitempty"`
	DMARC           DMARCResult `json:"dmarc"`
}

// Verify checks the message. It never fails: every part has a status, and
// DNS trouble shows as temperror.
func (v *Verifier) Verify(ctx context.Context, in Input) Results {
	ctx, cancel := context.WithTimeout(ctx, orDefault(v.Timeout, DefaultTimeout))
	defer cancel()
	r := v.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	var res Results
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res.SPF, res.HELO = v.checkSPF(ctx, r, in)
	}()

	res.DKIM = []DKIMResult{}
	h := &messageHeader{}
	if in.Message != nil {
		br := bufio.NewReaderSize(in.Message, 16<<10)
		var err error
		h, err = readHeader(br, orDefault(v.MaxHeaderBytes, DefaultMaxHeaderBytes))
		if err == nil {
			res.DKIM, res.DKIMNotVerified = verifyDKIM(ctx, r, h, br, orDefault(v.MaxDKIMSignatures, DefaultMaxDKIMSignatures))
		}
	}
	wg.Wait()
	res.DMARC = evaluateDMARC(ctx, r, h, dmarcInputs{spf: res.SPF, dkim: res.DKIM, rand: v.Rand})
	return res
}

// checkSPF checks the HELO identity and, for a non-null sender, the MAIL
// FROM identity.
func (v *Verifier) checkSPF(ctx context.Context, r Resolver, in Input) (spf, helo SPFResult) {
	base := SPFInput{IP: in.ClientIP, HELO: in.HELO, Receiver: v.Hostname}
	if v.Now != nil {
		base.Now = v.Now()
	}
	check := func(mailFrom string) SPFResult {
		c, cancel := context.WithTimeout(ctx, orDefault(v.SPFTimeout, DefaultSPFTimeout))
		defer cancel()
		in := base
		in.MailFrom = mailFrom
		res, _ := CheckSPF(c, r, in)
		return res
	}
	helo = check("")
	if in.MailFrom == "" {
		return helo, helo
	}
	return check(in.MailFrom), helo
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Findings turns the results into reason findings: spf_fail, spf_softfail,
// spf_permerror, spf_temperror (for the SPF identity), dkim_fail (a
// signature present and none passes, unless all failures are temporary),
// dmarc_reject / dmarc_quarantine / dmarc_none_fail by the applied policy,
// dmarc_temperror, and malformed_mime when the From header field is
// missing or repeated (RFC 5322 §3.6 wants exactly one).
func (r Results) Findings() []reason.Finding {
	var out []reason.Finding
	add := func(tag reason.Tag, format string, args ...any) {
		out = append(out, reason.Finding{Tag: tag, Detail: fmt.Sprintf(format, args...)})
	}
	spfTags := map[SPFStatus]reason.Tag{SPFFail: reason.SPFFail, SPFSoftfail: reason.SPFSoftfail,
		SPFPermerror: reason.SPFPermerror, SPFTemperror: reason.SPFTemperror}
	if tag, ok := spfTags[r.SPF.Status]; ok {
		add(tag, "spf=%s for %s %s: %s", r.SPF.Status, r.SPF.Identity, r.SPF.Domain, spfWhy(r.SPF))
	}
	if d := dkimFailure(r.DKIM); d != "" {
		add(reason.DKIMFail, "%s", d)
	}
	dm := r.DMARC
	switch {
	case dm.Status == DMARCFail && dm.Policy == PolicyReject:
		add(reason.DMARCReject, "dmarc=fail for %s, policy reject", dm.HeaderFrom)
	case dm.Status == DMARCFail && dm.Policy == PolicyQuarantine:
		add(reason.DMARCQuarantine, "dmarc=fail for %s, policy quarantine%s", dm.HeaderFrom, sampled(dm))
	case dm.Status == DMARCFail:
		add(reason.DMARCNoneFail, "dmarc=fail for %s, policy none%s", dm.HeaderFrom, sampled(dm))
	case dm.Status == DMARCTemperror:
		add(reason.DMARCTemperror, "dmarc=temperror for %s: %s", dm.HeaderFrom, dm.Reason)
	}
	switch {
	case dm.FromFields == 0 && dm.Status == DMARCPermerror:
		add(reason.MalformedMIME, "no From header field")
	case dm.FromFields > 1:
		add(reason.MalformedMIME, "%d From header fields", dm.FromFields)
	}
	return out
}

func spfWhy(r SPFResult) string {
	if r.Reason != "" {
		return r.Reason
	}
	return "matched " + r.Mechanism
}

func sampled(d DMARCResult) string {
	if d.SampledOut {
		return fmt.Sprintf(" (record says %s, pct=%d sampled it out)", d.RecordPolicy, d.Percent)
	}
	return ""
}

// dkimFailure describes why DKIM failed as a whole, or returns "" when a
// signature passed, there is none, or every failure is temporary.
func dkimFailure(results []DKIMResult) string {
	var parts []string
	for _, d := range results {
		switch d.Status {
		case DKIMPass:
			return ""
		case DKIMTemperror, DKIMNeutral:
			continue
		}
		parts = append(parts, fmt.Sprintf("d=%s s=%s: %s (%s)", d.Domain, d.Selector, d.Status, d.Reason))
	}
	return strings.Join(parts, "; ")
}
