package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"golang.org/x/crypto/ssh"
)

const remoteCommandToken = "command:remote:Command"

// RemoteCommand is command:remote:Command.
type RemoteCommand struct {
	logf lineLogger
}

// RemoteLogging is command:remote:Logging (the values of Logging).
type RemoteLogging Logging

func (RemoteLogging) Values() []infer.EnumValue[RemoteLogging] {
	var out []infer.EnumValue[RemoteLogging]
	for _, v := range loggingValues() {
		out = append(out, infer.EnumValue[RemoteLogging]{Name: v.Name, Value: RemoteLogging(v.Value), Description: v.Description})
	}
	return out
}

func (l *RemoteLogging) Annotate(a infer.Annotator) { a.SetToken("remote", "Logging") }

// ProxyConnection is command:remote:ProxyConnection (SDK, remote/_inputs.py).
type ProxyConnection struct {
	Host               string   `pulumi:"host"`
	Port               *float64 `pulumi:"port,optional"`
	User               *string  `pulumi:"user,optional"`
	Password           *string  `pulumi:"password,optional"`
	PrivateKey         *string  `pulumi:"privateKey,optional"`
	PrivateKeyPassword *string  `pulumi:"privateKeyPassword,optional"`
	AgentSocketPath    *string  `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int     `pulumi:"perDialTimeout,optional"`
	HostKey            *string  `pulumi:"hostKey,optional"`
}

func (c *ProxyConnection) Annotate(a infer.Annotator) {
	a.SetToken("remote", "ProxyConnection")
	a.Describe(c, "Instructions for how to connect to a remote endpoint via a bastion host.")
	describeHop(a, &c.Host, &c.Port, &c.User, &c.Password, &c.PrivateKey, &c.PrivateKeyPassword,
		&c.AgentSocketPath, &c.DialErrorLimit, &c.PerDialTimeout, &c.HostKey)
}

// Connection is command:remote:Connection (SDK, remote/_inputs.py).
type Connection struct {
	Host               string           `pulumi:"host"`
	Port               *float64         `pulumi:"port,optional"`
	User               *string          `pulumi:"user,optional"`
	Password           *string          `pulumi:"password,optional"`
	PrivateKey         *string          `pulumi:"privateKey,optional"`
	PrivateKeyPassword *string          `pulumi:"privateKeyPassword,optional"`
	AgentSocketPath    *string          `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int             `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int             `pulumi:"perDialTimeout,optional"`
	HostKey            *string          `pulumi:"hostKey,optional"`
	Proxy              *ProxyConnection `pulumi:"proxy,optional"`
}

func (c *Connection) Annotate(a infer.Annotator) {
	a.SetToken("remote", "Connection")
	a.Describe(c, "Instructions for how to connect to a remote endpoint.")
	describeHop(a, &c.Host, &c.Port, &c.User, &c.Password, &c.PrivateKey, &c.PrivateKeyPassword,
		&c.AgentSocketPath, &c.DialErrorLimit, &c.PerDialTimeout, &c.HostKey)
	a.Describe(&c.Proxy, "The connection settings for the bastion/proxy host.")
}

func describeHop(a infer.Annotator, host, port, user, password, privateKey, privateKeyPassword,
	agentSocketPath, dialErrorLimit, perDialTimeout, hostKey any,
) {
	a.Describe(host, "The address of the host to connect to.")
	a.Describe(port, "The port to connect to. Defaults to 22.")
	a.Describe(user, "The user to connect as. Defaults to root.")
	a.Describe(password, "The password to use for the connection.")
	a.Describe(privateKey, "The contents of an SSH key to use for the connection; preferred over the password.")
	a.Describe(privateKeyPassword, "The password of an encrypted private key.")
	a.Describe(agentSocketPath, "SSH agent socket path; defaults to SSH_AUTH_SOCK.")
	a.Describe(dialErrorLimit, "Max allowed errors on trying to dial the host; -1 for no limit. Defaults to 10.")
	a.Describe(perDialTimeout, "Max seconds for each dial attempt; 0 for no maximum. Defaults to 15.")
	a.Describe(hostKey, "The expected host key (OpenSSH public key); any key is accepted when unset.")
}

func (c Connection) hops() (hop, *hop) {
	target := newHop("connection", c.Host, c.Port, c.User, c.Password, c.PrivateKey,
		c.PrivateKeyPassword, c.AgentSocketPath, c.HostKey, c.DialErrorLimit, c.PerDialTimeout)
	if c.Proxy == nil {
		return target, nil
	}
	x := c.Proxy
	proxy := newHop("connection.proxy", x.Host, x.Port, x.User, x.Password, x.PrivateKey,
		x.PrivateKeyPassword, x.AgentSocketPath, x.HostKey, x.DialErrorLimit, x.PerDialTimeout)
	return target, &proxy
}

// RemoteCommandArgs are command:remote:Command's inputs (SDK, remote/command.py CommandArgs).
type RemoteCommandArgs struct {
	Connection             Connection        `pulumi:"connection"`
	Create                 *string           `pulumi:"create,optional"`
	Update                 *string           `pulumi:"update,optional"`
	Delete                 *string           `pulumi:"delete,optional"`
	Environment            map[string]string `pulumi:"environment,optional"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Triggers               []any             `pulumi:"triggers,optional"`
	Logging                *RemoteLogging    `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
}

func (a *RemoteCommandArgs) Annotate(an infer.Annotator) {
	an.Describe(&a.Connection, "The parameters with which to connect to the remote host.")
	an.Describe(&a.Create, "The command to run once on resource creation (and on update when `update` is unset).")
	an.Describe(&a.Update, "The command to run when the resource is updated; if empty, `create` runs instead.")
	an.Describe(&a.Delete, "The command to run on resource deletion, with PULUMI_COMMAND_STDOUT/STDERR set.")
	an.Describe(&a.Environment, "Additional environment variables, sent with the SSH env request (the server must accept them: AcceptEnv).")
	an.Describe(&a.Stdin, "A string written to the command's standard input.")
	an.Describe(&a.Triggers, "The resource is replaced when any of these values changes.")
	an.Describe(&a.Logging, "Which of stdout and stderr are logged; defaults to stdoutAndStderr.")
	an.Describe(&a.AddPreviousOutputInEnv, "Whether update and delete see the previous stdout and stderr as PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR; defaults to true.")
}

// RemoteCommandState is command:remote:Command's state: the inputs, stdout and stderr.
type RemoteCommandState struct {
	RemoteCommandArgs
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

func (s *RemoteCommandState) Annotate(a infer.Annotator) {
	a.Describe(&s.Stdout, "The standard output of the command's process.")
	a.Describe(&s.Stderr, "The standard error of the command's process.")
}

func (c *RemoteCommand) Annotate(a infer.Annotator) {
	a.SetToken("remote", "Command")
	a.Describe(c, "A command to run on a remote host over SSH (stand-in for pulumi-command's command:remote:Command).")
}

func (c *RemoteCommand) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[RemoteCommandArgs], error) {
	args, failures, err := infer.DefaultCheck[RemoteCommandArgs](ctx, req.NewInputs)
	if err != nil || len(failures) > 0 {
		return infer.CheckResponse[RemoteCommandArgs]{Inputs: args, Failures: failures}, err
	}
	failures = append(failures, checkLogging((*Logging)(args.Logging))...)
	// A host key known at check time must be readable (unknown values decode as "").
	check := func(property string, key *string) {
		if key == nil || *key == "" {
			return
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*key)); err != nil {
			failures = append(failures, p.CheckFailure{Property: property,
				Reason: "not an OpenSSH public key (\"ssh-ed25519 AAAA...\"): " + err.Error()})
		}
	}
	check("connection.hostKey", args.Connection.HostKey)
	if args.Connection.Proxy != nil {
		check("connection.proxy.hostKey", args.Connection.Proxy.HostKey)
	}
	return infer.CheckResponse[RemoteCommandArgs]{Inputs: args, Failures: failures}, nil
}

func (c *RemoteCommand) Create(ctx context.Context, req infer.CreateRequest[RemoteCommandArgs]) (infer.CreateResponse[RemoteCommandState], error) {
	state := RemoteCommandState{RemoteCommandArgs: req.Inputs}
	if req.DryRun {
		return infer.CreateResponse[RemoteCommandState]{Output: state}, nil
	}
	id := newID(req.Name)
	if req.Inputs.Create != nil {
		stdout, stderr, err := c.run(ctx, "create", *req.Inputs.Create, req.Inputs, nil)
		if err != nil {
			return infer.CreateResponse[RemoteCommandState]{}, err
		}
		state.Stdout, state.Stderr = stdout, stderr
	}
	return infer.CreateResponse[RemoteCommandState]{ID: id, Output: state}, nil
}

func (c *RemoteCommand) Update(ctx context.Context, req infer.UpdateRequest[RemoteCommandArgs, RemoteCommandState]) (infer.UpdateResponse[RemoteCommandState], error) {
	state := RemoteCommandState{RemoteCommandArgs: req.Inputs}
	if req.DryRun {
		return infer.UpdateResponse[RemoteCommandState]{Output: state}, nil
	}
	command := req.Inputs.Update
	if command == nil {
		command = req.Inputs.Create
	}
	if command == nil {
		state.Stdout, state.Stderr = req.State.Stdout, req.State.Stderr
		return infer.UpdateResponse[RemoteCommandState]{Output: state}, nil
	}
	previous := [2]string{req.State.Stdout, req.State.Stderr}
	stdout, stderr, err := c.run(ctx, "update", *command, req.Inputs, &previous)
	if err != nil {
		return infer.UpdateResponse[RemoteCommandState]{}, err
	}
	state.Stdout, state.Stderr = stdout, stderr
	return infer.UpdateResponse[RemoteCommandState]{Output: state}, nil
}

func (c *RemoteCommand) Delete(ctx context.Context, req infer.DeleteRequest[RemoteCommandState]) (infer.DeleteResponse, error) {
	if req.State.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	previous := [2]string{req.State.Stdout, req.State.Stderr}
	_, _, err := c.run(ctx, "delete", *req.State.Delete, req.State.RemoteCommandArgs, &previous)
	return infer.DeleteResponse{}, err
}

// Read (refresh) keeps the state as it is: there is nothing to read back from a command.
func (c *RemoteCommand) Read(_ context.Context, req infer.ReadRequest[RemoteCommandArgs, RemoteCommandState]) (infer.ReadResponse[RemoteCommandArgs, RemoteCommandState], error) {
	return infer.ReadResponse[RemoteCommandArgs, RemoteCommandState]{ID: req.ID, Inputs: req.Inputs, State: req.State}, nil
}

func (c *RemoteCommand) run(ctx context.Context, op, command string, args RemoteCommandArgs, previous *[2]string) (string, string, error) {
	inv := invocation{
		op:      op,
		command: command,
		env:     commandEnv(args.Environment, previous, args.AddPreviousOutputInEnv),
		stdin:   args.Stdin,
		logging: logging((*Logging)(args.Logging)),
		logf:    c.logf,
	}
	target, proxy := args.Connection.hops()
	client, err := dialTarget(ctx, target, proxy)
	if err != nil {
		return "", "", fmt.Errorf("%s command: %w", op, err)
	}
	defer client.Close()
	own := args.Environment
	return inv.run(ctx, remoteExecutor(client, func(name string) {
		// PULUMI_COMMAND_* are set for every update and delete; only the user's own
		// variables are worth a warning when the server refuses them.
		if _, mine := own[name]; mine {
			p.GetLogger(ctx).Warningf("the SSH server refused environment variable %s "+
				"(it must be listed in sshd's AcceptEnv); the command runs without it", name)
		}
	}))
}

// remoteExecutor runs a command in a new session of client. refused is told each environment
// variable the server does not accept.
func remoteExecutor(client *sshClient, refused func(name string)) executor {
	return func(ctx context.Context, command string, env map[string]string, stdin *string, stdout, stderr io.Writer) (int, error) {
		session, err := client.NewSession()
		if err != nil {
			return -1, fmt.Errorf("opening an SSH session: %w", err)
		}
		defer func() { _ = session.Close() }()
		for _, k := range sortedKeys(env) {
			if err := session.Setenv(k, env[k]); err != nil {
				refused(k)
			}
		}
		if stdin != nil {
			session.Stdin = strings.NewReader(*stdin)
		}
		session.Stdout = stdout
		session.Stderr = stderr
		done := make(chan error, 1)
		go func() { done <- session.Run(command) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			_ = session.Signal(ssh.SIGKILL)
			client.Close()
			<-done
			return -1, ctx.Err()
		}
		var exitErr *ssh.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.Signal() != "" {
				return -1, fmt.Errorf("the remote command was killed by signal %s", exitErr.Signal())
			}
			return exitErr.ExitStatus(), nil
		}
		var missing *ssh.ExitMissingError
		if errors.As(err, &missing) {
			return -1, errors.New("the remote command ended without an exit status (connection lost?)")
		}
		if err != nil {
			return -1, err
		}
		return 0, nil
	}
}
