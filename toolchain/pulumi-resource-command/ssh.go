package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Connection defaults (SDK, remote/_inputs.py).
const (
	defaultPort           = 22
	defaultUser           = "root"
	defaultDialErrorLimit = 10
	defaultPerDialTimeout = 15 // seconds
)

// Spacing of dial attempts: doubling from firstRetryWait up to maxRetryWait.
var (
	firstRetryWait = time.Second
	maxRetryWait   = 15 * time.Second
)

// hop is one SSH server to reach: the target, or the proxy in front of it.
type hop struct {
	role               string // "connection" or "connection.proxy", for messages
	host               string
	port               int
	user               string
	password           string
	privateKey         string
	privateKeyPassword string
	agentSocketPath    string
	hostKey            string
	dialErrorLimit     int
	perDialTimeout     time.Duration
}

func newHop(role, host string, port *float64, user, password, privateKey, privateKeyPassword,
	agentSocketPath, hostKey *string, dialErrorLimit, perDialTimeout *int,
) hop {
	h := hop{
		role:               role,
		host:               host,
		port:               defaultPort,
		user:               defaultUser,
		password:           deref(password),
		privateKey:         deref(privateKey),
		privateKeyPassword: deref(privateKeyPassword),
		agentSocketPath:    deref(agentSocketPath),
		hostKey:            deref(hostKey),
		dialErrorLimit:     defaultDialErrorLimit,
		perDialTimeout:     defaultPerDialTimeout * time.Second,
	}
	if port != nil && *port != 0 {
		h.port = int(*port)
	}
	if user != nil && *user != "" {
		h.user = *user
	}
	if dialErrorLimit != nil {
		h.dialErrorLimit = *dialErrorLimit
	}
	if perDialTimeout != nil {
		h.perDialTimeout = time.Duration(*perDialTimeout) * time.Second
	}
	return h
}

func (h hop) addr() string { return net.JoinHostPort(h.host, strconv.Itoa(h.port)) }

// HostKeyMismatchError is a server presenting another key than the pinned hostKey.
type HostKeyMismatchError struct {
	Role, Addr string
	Want, Got  ssh.PublicKey
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("SSH host key mismatch for %s (%s): the server presented %s %s, but %s.hostKey "+
		"is %s %s; refusing to connect (another host answers at this address, or the connection "+
		"is intercepted)", e.Addr, e.Role, e.Got.Type(), ssh.FingerprintSHA256(e.Got), e.Role,
		e.Want.Type(), ssh.FingerprintSHA256(e.Want))
}

// permanentError stops the dial retries.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// clientConfig is how to authenticate to h and check its host key. The returned function
// releases the SSH agent connection, if one was opened.
func (h hop) clientConfig() (*ssh.ClientConfig, func(), error) {
	release := func() {}
	var keys []ssh.Signer
	if h.privateKey != "" {
		var signer ssh.Signer
		var err error
		if h.privateKeyPassword != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(h.privateKey), []byte(h.privateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(h.privateKey))
		}
		if err != nil {
			return nil, release, fmt.Errorf("%s.privateKey of %s could not be read: %w", h.role, h.addr(), err)
		}
		keys = append(keys, signer)
	}
	var agentKeys func() ([]ssh.Signer, error)
	socket := h.agentSocketPath
	if socket == "" {
		socket = os.Getenv("SSH_AUTH_SOCK")
	}
	if socket != "" {
		conn, err := net.Dial("unix", socket)
		switch {
		case err == nil:
			release = func() { _ = conn.Close() }
			agentKeys = agent.NewClient(conn).Signers
		case h.privateKey == "" && h.password == "":
			return nil, release, fmt.Errorf("%s to %s: no privateKey or password, and the SSH agent at %s "+
				"does not answer: %w", h.role, h.addr(), socket, err)
		}
	}
	var methods []ssh.AuthMethod
	if len(keys) > 0 || agentKeys != nil {
		// One publickey method with every key (the private key first): the client does not
		// try a second method of the same kind after one failed.
		methods = append(methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			all := append([]ssh.Signer{}, keys...)
			if agentKeys != nil {
				if more, err := agentKeys(); err == nil {
					all = append(all, more...)
				}
			}
			return all, nil
		}))
	}
	if h.password != "" {
		password := h.password
		methods = append(methods, ssh.Password(password),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = password
				}
				return answers, nil
			}))
	}
	if len(methods) == 0 {
		return nil, release, fmt.Errorf("%s to %s: no way to authenticate: set privateKey or password, "+
			"or run an SSH agent (agentSocketPath or SSH_AUTH_SOCK)", h.role, h.addr())
	}
	config := &ssh.ClientConfig{User: h.user, Auth: methods, Timeout: h.perDialTimeout}
	if h.hostKey == "" {
		config.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		return config, release, nil
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.hostKey))
	if err != nil {
		release()
		return nil, func() {}, fmt.Errorf("%s.hostKey of %s is not an OpenSSH public key (\"ssh-ed25519 AAAA...\"): %w",
			h.role, h.addr(), err)
	}
	addr, role := h.addr(), h.role
	config.HostKeyCallback = func(_ string, _ net.Addr, got ssh.PublicKey) error {
		if bytes.Equal(got.Marshal(), want.Marshal()) {
			return nil
		}
		return &HostKeyMismatchError{Role: role, Addr: addr, Want: want, Got: got}
	}
	// Ask for the pinned key's kind only: a server with several host keys would otherwise
	// present whichever kind is negotiated first.
	config.HostKeyAlgorithms = hostKeyAlgorithms(want)
	return config, release, nil
}

func hostKeyAlgorithms(key ssh.PublicKey) []string {
	if key.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{key.Type()}
}

// sshClient is a connected target, and the proxy it was reached through, if any.
type sshClient struct {
	*ssh.Client
	proxy *ssh.Client
}

func (c *sshClient) Close() {
	_ = c.Client.Close()
	if c.proxy != nil {
		_ = c.proxy.Close()
	}
}

// dialTarget connects to target, through proxy when it is not nil, retrying each as its
// dialErrorLimit allows.
func dialTarget(ctx context.Context, target hop, proxy *hop) (*sshClient, error) {
	config, release, err := target.clientConfig()
	defer release()
	if err != nil {
		return nil, err
	}
	if proxy == nil {
		client, err := withRetries(ctx, target, func(ctx context.Context) (*ssh.Client, error) {
			return dialDirect(ctx, target, config)
		})
		if err != nil {
			return nil, err
		}
		return &sshClient{Client: client}, nil
	}
	proxyConfig, releaseProxy, err := proxy.clientConfig()
	defer releaseProxy()
	if err != nil {
		return nil, err
	}
	var bastion *ssh.Client
	client, err := withRetries(ctx, target, func(ctx context.Context) (*ssh.Client, error) {
		if bastion == nil {
			b, err := withRetries(ctx, *proxy, func(ctx context.Context) (*ssh.Client, error) {
				return dialDirect(ctx, *proxy, proxyConfig)
			})
			if err != nil {
				return nil, &permanentError{err}
			}
			bastion = b
		}
		c, err := dialThrough(ctx, bastion, target, config)
		if err != nil && !alive(bastion) {
			_ = bastion.Close()
			bastion = nil
		}
		return c, err
	})
	if err != nil {
		if bastion != nil {
			_ = bastion.Close()
		}
		return nil, err
	}
	return &sshClient{Client: client, proxy: bastion}, nil
}

// withRetries calls dial until it succeeds, it fails for good (a host key mismatch, or a
// permanentError), or h.dialErrorLimit attempts failed (-1: no limit).
func withRetries(ctx context.Context, h hop, dial func(context.Context) (*ssh.Client, error)) (*ssh.Client, error) {
	wait := firstRetryWait
	for attempt := 1; ; attempt++ {
		client, err := dial(ctx)
		if err == nil {
			return client, nil
		}
		var mismatch *HostKeyMismatchError
		if errors.As(err, &mismatch) {
			return nil, mismatch
		}
		var permanent *permanentError
		if errors.As(err, &permanent) {
			return nil, permanent.err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dialing %s (%s@%s): %w", h.role, h.user, h.addr(), ctx.Err())
		}
		if h.dialErrorLimit >= 0 && attempt >= max(h.dialErrorLimit, 1) {
			return nil, fmt.Errorf("dialing %s (%s@%s) failed %d times (dialErrorLimit %d); last error: %w",
				h.role, h.user, h.addr(), attempt, h.dialErrorLimit, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dialing %s (%s@%s): %w", h.role, h.user, h.addr(), ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// perDial bounds one attempt by h.perDialTimeout (0: no bound).
func perDial(ctx context.Context, h hop) (context.Context, context.CancelFunc) {
	if h.perDialTimeout > 0 {
		return context.WithTimeout(ctx, h.perDialTimeout)
	}
	return context.WithCancel(ctx)
}

func dialDirect(ctx context.Context, h hop, config *ssh.ClientConfig) (*ssh.Client, error) {
	ctx, cancel := perDial(ctx, h)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", h.addr())
	if err != nil {
		return nil, err
	}
	return handshake(ctx, conn, h.addr(), config)
}

// dialThrough reaches h from bastion with a direct-tcpip channel and speaks SSH over it.
func dialThrough(ctx context.Context, bastion *ssh.Client, h hop, config *ssh.ClientConfig) (*ssh.Client, error) {
	ctx, cancel := perDial(ctx, h)
	defer cancel()
	conn, err := bastion.DialContext(ctx, "tcp", h.addr())
	if err != nil {
		return nil, fmt.Errorf("through the proxy: %w", err)
	}
	return handshake(ctx, conn, h.addr(), config)
}

// handshake runs the SSH handshake on conn, giving up when ctx ends.
func handshake(ctx context.Context, conn net.Conn, addr string, config *ssh.ClientConfig) (*ssh.Client, error) {
	type result struct {
		conn  ssh.Conn
		chans <-chan ssh.NewChannel
		reqs  <-chan *ssh.Request
		err   error
	}
	done := make(chan result, 1)
	go func() {
		c, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
		done <- result{c, chans, reqs, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			_ = conn.Close()
			return nil, r.err
		}
		return ssh.NewClient(r.conn, r.chans, r.reqs), nil
	case <-ctx.Done():
		_ = conn.Close()
		if r := <-done; r.err == nil {
			_ = r.conn.Close()
		}
		return nil, fmt.Errorf("SSH handshake with %s: %w", addr, ctx.Err())
	}
}

// alive tells whether an SSH connection still answers.
func alive(c *ssh.Client) bool {
	_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
	return err == nil
}
