//go:build unix

package smtp

import (
	"errors"
	"net"
	"syscall"
)

// connAlive reports whether a kept session's socket is still open and
// silent: the relay has neither closed it nor written to it (a 421
// before closing). It peeks without blocking, so a live connection costs
// one system call and no round trip.
func connAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true // cannot tell: the first command will
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		_ = n // 0 with no error: closed; above 0: the relay wrote (a 421)
		alive = rerr != nil && (errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK))
		return true // never wait for readiness
	})
	return err == nil && alive
}
