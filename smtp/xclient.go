package smtp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// XCLIENT (Postfix XCLIENT_README): a trusted proxy tells us who the real
// client is. Attribute values are xtext (RFC 3461 §4); [UNAVAILABLE] and
// [TEMPUNAVAIL] mean the proxy does not know. ADDR, PORT and NAME not given
// keep their values; HELO not given is reset (the next EHLO names it), and
// HELO given sticks even across later EHLOs (a proxy re-sends EHLO with a
// name of its choosing). After success the server answers with its 220
// greeting and the client must start again with EHLO.

// maxXCLIENTValue bounds one decoded attribute value.
const maxXCLIENTValue = 255

// xclientAttrs are the parsed attributes; a nil field was not given.
type xclientAttrs struct {
	addr  *netip.Addr // invalid Addr: unavailable
	port  *uint16
	name  *string // "" unavailable
	helo  *string // "" unavailable
	proto *string
}

// xclientError is a syntax refusal with Postfix's wording.
type xclientError struct{ text string }

// Error returns the reply line.
func (e *xclientError) Error() string { return e.text }

// parseXCLIENT parses the arguments of an XCLIENT command.
func parseXCLIENT(args string) (xclientAttrs, error) {
	var a xclientAttrs
	fields := strings.Fields(args)
	if len(fields) == 0 {
		return a, &xclientError{"501 5.5.4 Syntax: XCLIENT attribute=value..."}
	}
	for _, f := range fields {
		name, raw, ok := strings.Cut(f, "=")
		if !ok {
			return a, &xclientError{"501 5.5.4 Syntax: XCLIENT attribute=value..."}
		}
		val, ok := decodeXtext(raw)
		if !ok || len(val) > maxXCLIENTValue {
			return a, &xclientError{"501 5.5.4 Bad XCLIENT attribute value"}
		}
		if err := a.set(strings.ToUpper(name), val); err != nil {
			return a, err
		}
	}
	return a, nil
}

func (a *xclientAttrs) set(name, val string) error {
	unavailable := val == "[UNAVAILABLE]" || val == "[TEMPUNAVAIL]"
	switch name {
	case "ADDR":
		var ip netip.Addr
		if !unavailable {
			var ok bool
			if ip, ok = parseXCLIENTAddr(val); !ok {
				return &xclientError{"501 5.5.4 Bad XCLIENT ADDR syntax"}
			}
		}
		a.addr = &ip
	case "PORT":
		var port uint16
		if !unavailable {
			n, err := strconv.ParseUint(val, 10, 16)
			if err != nil {
				return &xclientError{"501 5.5.4 Bad XCLIENT PORT syntax"}
			}
			port = uint16(n)
		}
		a.port = &port
	case "NAME":
		name := ""
		if !unavailable {
			ascii, ok := domainASCII(strings.TrimSuffix(val, "."))
			if !ok {
				return &xclientError{"501 5.5.4 Bad XCLIENT NAME syntax"}
			}
			name = ascii
		}
		a.name = &name
	case "HELO":
		helo := ""
		if !unavailable {
			if !printableASCII(val) {
				return &xclientError{"501 5.5.4 Bad XCLIENT HELO syntax"}
			}
			helo = val
		}
		a.helo = &helo
	case "PROTO":
		p := strings.ToUpper(val)
		if !unavailable && p != "SMTP" && p != "ESMTP" {
			return &xclientError{"501 5.5.4 Bad XCLIENT PROTO syntax"}
		}
		a.proto = &p
	default:
		return &xclientError{"501 5.5.4 Bad XCLIENT attribute name: " + cleanText(name, "?")}
	}
	return nil
}

// parseXCLIENTAddr accepts an IPv4 address or "IPV6:" and an IPv6 address
// (the prefix is case-insensitive; Postfix also sends bare IPv6).
func parseXCLIENTAddr(s string) (netip.Addr, bool) {
	v6, isV6 := cutPrefixFold(s, "IPV6:")
	ip, err := netip.ParseAddr(v6)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	if isV6 && !ip.Is6() {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// decodeXtext decodes RFC 3461 §4 xtext: printable ASCII except '+' and
// '=', with "+HH" (upper-case hex) for anything else.
func decodeXtext(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
				return "", false
			}
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
		case c < '!' || c > '~' || c == '=':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func printableASCII(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

// xclient handles one XCLIENT command line. It returns errConnClosed when
// the connection must end.
func (c *conn) xclient(args string) error {
	c.mu.Lock()
	trusted, inTx := c.trusted, c.txActive
	c.mu.Unlock()
	if !trusted {
		metricRejections.WithLabelValues("xclient", "5xx", "xclient_denied").Inc()
		c.writeRaw("550 5.7.0 XCLIENT not permitted from this address\r\n")
		return nil
	}
	if inTx {
		c.writeRaw("503 5.5.1 XCLIENT not permitted during a mail transaction\r\n")
		return nil
	}
	attrs, err := parseXCLIENT(args)
	if err != nil {
		c.writeRaw(err.Error() + "\r\n")
		return nil
	}
	info, ok := c.applyXCLIENT(attrs)
	if !ok {
		metricConnections.WithLabelValues("limit_ip").Inc()
		c.writeRaw(fmt.Sprintf("421 4.7.0 %s too many connections from your address, try again later\r\n", c.srv.cfg.Hostname))
		return errConnClosed
	}
	if err := c.srv.h.Connect(c.ctx, info); err != nil {
		metricRejections.WithLabelValues("connect", codeClass(err), reasonFor(err)).Inc()
		c.writeRaw(replyLine(replyFor(err, info.ID)) + "\r\n")
		return errConnClosed
	}
	c.srv.log.Debug("smtp xclient", "conn_id", info.ID, "client_ip", info.RemoteIP.String(), "helo", info.HELO)
	c.writeRaw(fmt.Sprintf("220 %s ESMTP Service Ready\r\n", c.srv.cfg.Hostname))
	return nil
}

// applyXCLIENT changes the connection's identity and moves its per-IP
// charge to the new address; it fails when that address is over its limit.
func (c *conn) applyXCLIENT(a xclientAttrs) (ConnInfo, bool) {
	c.mu.Lock()
	newIP := c.info.RemoteIP
	c.mu.Unlock()
	if a.addr != nil {
		newIP = *a.addr
		if !c.srv.limits.move(c, newIP) {
			return ConnInfo{}, false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.addr != nil {
		c.info.RemoteIP = newIP
		c.info.Internal = newIP.IsValid() && inPrefixes(newIP, c.srv.internal)
	}
	if a.port != nil {
		c.info.RemotePort = *a.port
	}
	if a.name != nil {
		c.info.Hostname = *a.name
	}
	if a.helo != nil {
		c.info.HELO, c.heloPinned = *a.helo, true
	} else {
		c.info.HELO, c.heloPinned = "", false // as Postfix: the next EHLO names it
	}
	c.info.Proxied = true
	c.needHelo = true
	return c.info, true
}

// startTLS handles STARTTLS itself (RFC 3207) so that the front end keeps
// reading cleartext. A failed handshake ends the connection.
func (c *conn) startTLS(arg string) error {
	c.mu.Lock()
	inTx := c.txActive
	c.mu.Unlock()
	switch {
	case arg != "":
		c.writeRaw("501 5.5.4 Syntax: STARTTLS\r\n")
		return nil
	case c.srv.tlsConfig == nil:
		c.writeRaw("502 5.5.1 STARTTLS not supported\r\n")
		return nil
	case c.tlsActive:
		c.writeRaw("554 5.5.1 TLS already active\r\n")
		return nil
	case inTx:
		c.writeRaw("503 5.5.1 STARTTLS not permitted during a mail transaction\r\n")
		return nil
	}
	c.writeRaw("220 2.0.0 Ready to start TLS\r\n")
	if err := c.handshake(); err != nil {
		metricConnections.WithLabelValues("tls_error").Inc()
		c.srv.log.Debug("smtp starttls failed", "conn_id", c.info.ID, "err", err)
		return errConnClosed
	}
	// RFC 3207 §4.2: forget what the client told us; EHLO comes again.
	c.mu.Lock()
	c.needHelo = true
	if !c.heloPinned {
		c.info.HELO = ""
	}
	c.mu.Unlock()
	return nil
}
