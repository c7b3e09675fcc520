package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
)

// Logging is which of a command's streams go to the engine log (SDK: the Logging enum of
// command:local and command:remote, the same four values in both).
type Logging string

const (
	LoggingStdout          Logging = "stdout"
	LoggingStderr          Logging = "stderr"
	LoggingStdoutAndStderr Logging = "stdoutAndStderr"
	LoggingNone            Logging = "none"
)

func loggingValues() []infer.EnumValue[Logging] {
	return []infer.EnumValue[Logging]{
		{Name: "Stdout", Value: LoggingStdout, Description: "Capture stdout in logs but not stderr"},
		{Name: "Stderr", Value: LoggingStderr, Description: "Capture stderr in logs but not stdout"},
		{Name: "StdoutAndStderr", Value: LoggingStdoutAndStderr, Description: "Capture stdout and stderr in logs"},
		{Name: "None", Value: LoggingNone, Description: "Capture no logs"},
	}
}

// logging is the effective setting: unset means stdoutAndStderr (SDK docstring).
func logging(l *Logging) Logging {
	if l == nil || *l == "" {
		return LoggingStdoutAndStderr
	}
	return *l
}

func (l Logging) valid() bool {
	switch l {
	case LoggingStdout, LoggingStderr, LoggingStdoutAndStderr, LoggingNone:
		return true
	}
	return false
}

func (l Logging) logsStdout() bool { return l == LoggingStdout || l == LoggingStdoutAndStderr }
func (l Logging) logsStderr() bool { return l == LoggingStderr || l == LoggingStdoutAndStderr }

// lineLogger receives one line of a command's output; stream is "stdout" or "stderr".
type lineLogger func(ctx context.Context, stream, line string)

// engineLog sends a line to the engine log, attached to the resource in ctx.
func engineLog(ctx context.Context, _ string, line string) {
	p.GetLogger(ctx).Info(line)
}

// executor runs one command with its streams attached and returns its exit status. A
// non-nil error means the command could not be run or its status is unknown.
type executor func(ctx context.Context, command string, env map[string]string, stdin *string,
	stdout, stderr io.Writer) (exitStatus int, err error)

// invocation is one run of a command: which operation, what to run, how to log it.
type invocation struct {
	op      string // "create", "update" or "delete", for messages
	command string
	env     map[string]string
	stdin   *string
	logging Logging
	logf    lineLogger
}

// run runs inv with exec and returns its stdout and stderr, each without one trailing newline.
func (inv invocation) run(ctx context.Context, exec executor) (string, string, error) {
	logf := inv.logf
	if logf == nil {
		logf = engineLog
	}
	var outBuf, errBuf bytes.Buffer
	var mu sync.Mutex // the two streams are copied by different goroutines
	outW := &lineWriter{buf: &outBuf, mu: &mu}
	errW := &lineWriter{buf: &errBuf, mu: &mu}
	if inv.logging.logsStdout() {
		outW.emit = func(line string) { logf(ctx, "stdout", line) }
	}
	if inv.logging.logsStderr() {
		errW.emit = func(line string) { logf(ctx, "stderr", line) }
	}
	status, err := exec(ctx, inv.command, inv.env, inv.stdin, outW, errW)
	outW.flush()
	errW.flush()
	stdout := strings.TrimSuffix(outBuf.String(), "\n")
	stderr := strings.TrimSuffix(errBuf.String(), "\n")
	if err != nil {
		return stdout, stderr, fmt.Errorf("running the %s command: %w%s", inv.op, err, inv.tails(stdout, stderr))
	}
	if status != 0 {
		return stdout, stderr, fmt.Errorf("the %s command failed: exit status %d%s", inv.op, status, inv.tails(stdout, stderr))
	}
	return stdout, stderr, nil
}

// tailLines is how many of the last lines of each stream an error message shows.
const tailLines = 20

// tails is the end of the command's output for an error message; nothing when logging is
// none, since that output may hold secrets.
func (inv invocation) tails(stdout, stderr string) string {
	if inv.logging == LoggingNone {
		return " (output not shown: logging is \"none\")"
	}
	var b strings.Builder
	for _, s := range []struct{ name, text string }{{"stderr", stderr}, {"stdout", stdout}} {
		if strings.TrimSpace(s.text) == "" {
			continue
		}
		lines := strings.Split(s.text, "\n")
		if len(lines) > tailLines {
			fmt.Fprintf(&b, "\n%s (last %d lines):", s.name, tailLines)
			lines = lines[len(lines)-tailLines:]
		} else {
			fmt.Fprintf(&b, "\n%s:", s.name)
		}
		for _, l := range lines {
			b.WriteString("\n    " + l)
		}
	}
	return b.String()
}

// lineWriter keeps everything written to it and passes each complete line to emit.
type lineWriter struct {
	buf     *bytes.Buffer
	mu      *sync.Mutex
	emit    func(line string)
	pending []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(b)
	w.mu.Unlock()
	if w.emit == nil {
		return len(b), nil
	}
	w.pending = append(w.pending, b...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			break
		}
		w.emit(strings.TrimSuffix(string(w.pending[:i]), "\r"))
		w.pending = w.pending[i+1:]
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	if w.emit != nil && len(w.pending) > 0 {
		w.emit(string(w.pending))
	}
	w.pending = nil
}

// commandEnv is a command's environment: its own variables, plus the previous outputs for
// an update or delete when addPreviousOutputInEnv is not false (SDK docstrings).
func commandEnv(own map[string]string, previous *[2]string, addPrevious *bool) map[string]string {
	env := make(map[string]string, len(own)+2)
	for k, v := range own {
		env[k] = v
	}
	if previous != nil && (addPrevious == nil || *addPrevious) {
		env["PULUMI_COMMAND_STDOUT"] = previous[0]
		env["PULUMI_COMMAND_STDERR"] = previous[1]
	}
	return env
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// newID is a resource ID: the name and a random suffix (nothing reads it back).
func newID(name string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return name
	}
	return name + "-" + hex.EncodeToString(b)
}

// unsupportedPaths fails for the inputs this stand-in does not implement.
func unsupportedPaths(assetPaths, archivePaths []string) error {
	var errs []error
	if len(assetPaths) > 0 {
		errs = append(errs, errors.New("assetPaths is not implemented by the stand-in pulumi-resource-command"))
	}
	if len(archivePaths) > 0 {
		errs = append(errs, errors.New("archivePaths is not implemented by the stand-in pulumi-resource-command"))
	}
	return errors.Join(errs...)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
