package syslog

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// unackedBytes returns how many bytes written to c the peer's TCP stack has
// not acknowledged yet (SIOCOUTQ).
func unackedBytes(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, errors.New("syslog: connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
		return 0, err
	}
	return n, ierr
}
