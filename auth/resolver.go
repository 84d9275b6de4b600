package auth

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// Resolver is the part of *net.Resolver that auth uses. The resolver
// package implements it with a cache; auth/dnstest has a fake for tests.
//
// Implementations report a name that does not exist, or exists without
// records of the asked type, as *net.DNSError{IsNotFound: true}, and a
// failure that a retry may cure (SERVFAIL, timeout) as
// *net.DNSError{IsTemporary: true}. Any other error is treated as
// temporary, which is the safe reading for every check here.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

var _ Resolver = (*net.Resolver)(nil)

// isNotFound reports whether err says that the name or the records do not
// exist (NXDOMAIN or NODATA), as opposed to a failure to find out.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
