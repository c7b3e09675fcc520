package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	p "github.com/pulumi/pulumi-go-provider"
	"golang.org/x/crypto/ssh"
)

// sshServer is an in-process SSH server: it runs `exec` requests with /bin/sh, accepts only
// environment variables named ALLOWED or PULUMI_COMMAND_*, and forwards direct-tcpip channels.
type sshServer struct {
	addr  string
	conns atomic.Int32 // TCP connections accepted
}

func newSigner(t *testing.T, kind string) ssh.Signer {
	t.Helper()
	var key any
	var err error
	switch kind {
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func authorizedKey(s ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

// clientKey is a user key and its OpenSSH PEM text, as a program passes privateKey.
func clientKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, string(pem.EncodeToMemory(block))
}

func startSSHServer(t *testing.T, user ssh.PublicKey, hostKeys ...ssh.Signer) *sshServer {
	t.Helper()
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), user.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	for _, k := range hostKeys {
		config.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s := &sshServer{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go s.serve(conn, config)
		}
	}()
	return s
}

func (s *sshServer) hostPort(t *testing.T) (string, float64) {
	host, port, err := net.SplitHostPort(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return host, float64(n)
}

func (s *sshServer) serve(conn net.Conn, config *ssh.ServerConfig) {
	defer func() { _ = conn.Close() }()
	_, chans, reqs, err := ssh.NewServerConn(conn, config)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			go session(nch)
		case "direct-tcpip":
			go forward(nch)
		default:
			_ = nch.Reject(ssh.UnknownChannelType, "unsupported")
		}
	}
}

func session(nch ssh.NewChannel) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	defer func() { _ = ch.Close() }()
	var env []string
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			_ = ssh.Unmarshal(req.Payload, &kv)
			ok := kv.Name == "ALLOWED" || strings.HasPrefix(kv.Name, "PULUMI_COMMAND_")
			if ok {
				env = append(env, kv.Name+"="+kv.Value)
			}
			_ = req.Reply(ok, nil)
		case "exec":
			var payload struct{ Command string }
			_ = ssh.Unmarshal(req.Payload, &payload)
			_ = req.Reply(true, nil)
			cmd := exec.Command("/bin/sh", "-c", payload.Command)
			cmd.Env = env
			cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
			status := 0
			if err := cmd.Run(); err != nil {
				status = 255
				var exitErr *exec.ExitError
				if errors.As(err, &exitErr) {
					status = exitErr.ExitCode()
				}
			}
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

func forward(nch ssh.NewChannel) {
	var to struct {
		Host     string
		Port     uint32
		FromHost string
		FromPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &to); err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	target, err := net.Dial("tcp", net.JoinHostPort(to.Host, strconv.Itoa(int(to.Port))))
	if err != nil {
		_ = nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		_ = target.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		_, _ = io.Copy(ch, target)
		_ = ch.Close()
	}()
	go func() {
		_, _ = io.Copy(target, ch)
		_ = target.Close()
	}()
}

// connection is the `connection` input for s.
func (s *sshServer) connection(t *testing.T, privateKey string, extra map[string]any) map[string]any {
	host, port := s.hostPort(t)
	c := map[string]any{"host": host, "port": port, "user": "tester", "privateKey": privateKey,
		"dialErrorLimit": 2, "perDialTimeout": 5}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// A remote command over SSH: stdin, accepted and refused environment variables, outputs,
// update with the previous outputs, delete with the old inputs.
func TestRemoteLifecycle(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	user, privateKey := clientKey(t)
	hostKey := newSigner(t, "ed25519")
	server := startSSHServer(t, user.PublicKey(), hostKey)
	h := newHarness(t)
	r := h.resource(remoteCommandToken, "remote")
	args := map[string]any{
		"connection":  server.connection(t, privateKey, map[string]any{"hostKey": authorizedKey(hostKey)}),
		"create":      `echo "$ALLOWED-${REFUSED-unset}-$(cat)"; echo err >&2`,
		"update":      `echo "was $PULUMI_COMMAND_STDOUT"`,
		"delete":      `echo "delete $PULUMI_COMMAND_STDOUT $(cat)" >&2; exit 7`,
		"environment": map[string]string{"ALLOWED": "yes", "REFUSED": "no"},
		"stdin":       "hello",
	}
	if _, err := r.create(props(args), true); err != nil || server.conns.Load() != 0 {
		t.Fatalf("preview should not connect: %v, %d connections", err, server.conns.Load())
	}
	out, err := r.create(props(args), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, out, "stdout"); got != "yes-unset-hello" {
		t.Fatalf("stdout = %q", got)
	}
	if got := str(t, out, "stderr"); got != "err" {
		t.Fatalf("stderr = %q", got)
	}

	args["stdin"] = "again"
	if d := r.diff(props(args)); !d.HasChanges || d.DetailedDiff["stdin"].Kind != p.Update {
		t.Fatalf("stdin change: %+v", d)
	}
	out, err = r.update(props(args), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(t, out, "stdout"); got != "was yes-unset-hello" {
		t.Fatalf("update stdout = %q", got)
	}

	err = r.delete()
	if err == nil || !strings.Contains(err.Error(), "exit status 7") ||
		!strings.Contains(err.Error(), "delete was yes-unset-hello again") {
		t.Fatalf("delete should fail with its status and stderr: %v", err)
	}
}

// hostKey pins the server's key: a match connects, a mismatch fails at once with a clear
// error (no retries), no hostKey accepts any key. A server with several host keys is asked
// for the pinned key's kind.
func TestHostKeyPinning(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	user, privateKey := clientKey(t)
	ed, ec, other := newSigner(t, "ed25519"), newSigner(t, "ecdsa"), newSigner(t, "ed25519")
	for _, tc := range []struct {
		name     string
		hostKeys []ssh.Signer
		pin      string
		mismatch bool
	}{
		{"pinned ed25519", []ssh.Signer{ed}, authorizedKey(ed), false},
		{"not pinned", []ssh.Signer{ed}, "", false},
		{"wrong key", []ssh.Signer{ed}, authorizedKey(other), true},
		{"pinned ecdsa of ed25519+ecdsa", []ssh.Signer{ed, ec}, authorizedKey(ec), false},
		{"pinned ed25519 of ed25519+ecdsa", []ssh.Signer{ec, ed}, authorizedKey(ed), false},
		{"pin with a comment and newline", []ssh.Signer{ed}, authorizedKey(ed) + " root@node\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := startSSHServer(t, user.PublicKey(), tc.hostKeys...)
			conn := server.connection(t, privateKey, map[string]any{"dialErrorLimit": 5})
			if tc.pin != "" {
				conn["hostKey"] = tc.pin
			}
			h := newHarness(t)
			out, err := h.resource(remoteCommandToken, "pin").create(props(map[string]any{
				"connection": conn, "create": "echo connected"}), false)
			if !tc.mismatch {
				if err != nil {
					t.Fatal(err)
				}
				if got := str(t, out, "stdout"); got != "connected" {
					t.Fatalf("stdout = %q", got)
				}
				return
			}
			if err == nil {
				t.Fatal("a host key mismatch must fail")
			}
			if !strings.Contains(err.Error(), "host key mismatch") || !strings.Contains(err.Error(), ssh.FingerprintSHA256(ed.PublicKey())) {
				t.Fatalf("unclear error: %v", err)
			}
			if n := server.conns.Load(); n != 1 {
				t.Fatalf("a mismatch should not be retried: %d connections", n)
			}
		})
	}
}

// The target is reached through the proxy (a direct-tcpip channel); each hop has its own
// pinned host key.
func TestProxy(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	user, privateKey := clientKey(t)
	proxyKey, targetKey, other := newSigner(t, "ed25519"), newSigner(t, "ed25519"), newSigner(t, "ed25519")
	proxy := startSSHServer(t, user.PublicKey(), proxyKey)
	target := startSSHServer(t, user.PublicKey(), targetKey)
	run := func(proxyPin string) (string, error) {
		conn := target.connection(t, privateKey, map[string]any{
			"hostKey": authorizedKey(targetKey),
			"proxy":   proxy.connection(t, privateKey, map[string]any{"hostKey": proxyPin}),
		})
		h := newHarness(t)
		out, err := h.resource(remoteCommandToken, "via-proxy").create(props(map[string]any{
			"connection": conn, "create": "echo through"}), false)
		if err != nil {
			return "", err
		}
		return str(t, out, "stdout"), nil
	}
	got, err := run(authorizedKey(proxyKey))
	if err != nil || got != "through" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	if proxy.conns.Load() != 1 || target.conns.Load() != 1 {
		t.Fatalf("connections: proxy %d, target %d", proxy.conns.Load(), target.conns.Load())
	}
	_, err = run(authorizedKey(other))
	if err == nil || !strings.Contains(err.Error(), "host key mismatch") || !strings.Contains(err.Error(), "connection.proxy") {
		t.Fatalf("a proxy host key mismatch should fail clearly: %v", err)
	}
}

// Dialing is retried dialErrorLimit times, then fails naming the attempts.
func TestDialRetries(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	firstRetryWait, maxRetryWait = 10*time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { firstRetryWait, maxRetryWait = time.Second, 15*time.Second })
	_, privateKey := clientKey(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	_ = ln.Close() // nothing listens there any more
	dialErrorLimit := 3
	target := newHop("connection", "127.0.0.1", ptr(float64(addr.Port)), nil, nil, &privateKey, nil, nil, nil, &dialErrorLimit, ptr(1))
	start := time.Now()
	_, err = dialTarget(context.Background(), target, nil)
	if err == nil || !strings.Contains(err.Error(), "failed 3 times") {
		t.Fatalf("error %v should say 3 attempts failed", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("retries took %v", time.Since(start))
	}

	// A server that comes up while we retry is reached (-1: no limit).
	unlimited := -1
	target = newHop("connection", "127.0.0.1", ptr(float64(addr.Port)), nil, nil, &privateKey, nil, nil, nil, &unlimited, ptr(1))
	go func() {
		time.Sleep(100 * time.Millisecond)
		late, err := net.Listen("tcp", addr.String())
		if err != nil {
			return
		}
		t.Cleanup(func() { _ = late.Close() })
		config := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
		config.AddHostKey(newSigner(t, "ed25519"))
		s := &sshServer{addr: addr.String()}
		conn, err := late.Accept()
		if err == nil {
			s.serve(conn, config)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := dialTarget(ctx, target, nil)
	if err != nil {
		t.Fatalf("unlimited retries should reach the late server: %v", err)
	}
	client.Close()
}

func TestNoAuthentication(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	_, err := dialTarget(context.Background(), newHop("connection", "127.0.0.1", nil, nil, nil, nil, nil, nil, nil, nil, nil), nil)
	if err == nil || !strings.Contains(err.Error(), "no way to authenticate") {
		t.Fatalf("error %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
