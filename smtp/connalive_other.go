//go:build !unix

package smtp

import "net"

// connAlive cannot peek on this platform: a kept session is assumed open,
// and a closed one fails its first command (a temporary failure).
func connAlive(net.Conn) bool { return true }
