package main

import (
	"context"
	"net"
	"syscall"
)

// listen binds addr with IP_FREEBIND: the address may not exist yet (the machines' Docker
// network, whose gateway it is, can be made after the stand-in starts) and may go and come
// back (the network made again) while the stand-in keeps listening.
func listen(addr string) (net.Listener, error) {
	config := net.ListenConfig{Control: func(_, _ string, conn syscall.RawConn) error {
		var err error
		if ctrl := conn.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1)
		}); ctrl != nil {
			return ctrl
		}
		return err
	}}
	return config.Listen(context.Background(), "tcp4", addr)
}
