//go:build !linux

package main

import "net"

// listen binds addr, which must exist (IP_FREEBIND is Linux's).
func listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
