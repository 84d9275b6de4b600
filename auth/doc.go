// Package auth decides who really sent a message: SPF (RFC 7208) for the
// MAIL FROM and HELO identities, DKIM (RFC 6376, RFC 8463) signatures,
// DMARC (RFC 7489) alignment and policy, and the Authentication-Results
// header (RFC 8601) the gateway adds, including the removal of forged ones.
//
// It takes plain values (client IP, HELO, envelope sender, the raw message)
// and a Resolver, and returns results that always carry a status: protocol
// outcomes such as temperror and permerror are results, not errors. It knows
// nothing of SMTP sessions, policy rules or logging; the gateway turns
// Results.Findings into decisions.
//
// SPF is evaluated by this package (not by blitiri.com.ar/go/spf, which
// skips a sixth of the RFC 7208 test suite); DKIM signatures are verified
// with github.com/emersion/go-msgauth; DMARC record parsing, discovery with
// the organizational-domain fallback and alignment are implemented here.
package auth
