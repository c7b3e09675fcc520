package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
)

const localCommandToken = "command:local:Command"

// defaultInterpreter is what runs a local command when `interpreter` is unset (SDK: "On Linux
// and macOS, defaults to: ["/bin/sh", "-c"]").
var defaultInterpreter = []string{"/bin/sh", "-c"}

// LocalCommand is command:local:Command.
type LocalCommand struct {
	logf lineLogger
}

// LocalLogging is command:local:Logging (the values of Logging).
type LocalLogging Logging

func (LocalLogging) Values() []infer.EnumValue[LocalLogging] {
	var out []infer.EnumValue[LocalLogging]
	for _, v := range loggingValues() {
		out = append(out, infer.EnumValue[LocalLogging]{Name: v.Name, Value: LocalLogging(v.Value), Description: v.Description})
	}
	return out
}

func (l *LocalLogging) Annotate(a infer.Annotator) { a.SetToken("local", "Logging") }

// LocalCommandArgs are command:local:Command's inputs (SDK, local/command.py CommandArgs).
type LocalCommandArgs struct {
	Create                 *string           `pulumi:"create,optional"`
	Update                 *string           `pulumi:"update,optional"`
	Delete                 *string           `pulumi:"delete,optional"`
	Dir                    *string           `pulumi:"dir,optional"`
	Environment            map[string]string `pulumi:"environment,optional"`
	Interpreter            []string          `pulumi:"interpreter,optional"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Triggers               []any             `pulumi:"triggers,optional"`
	Logging                *LocalLogging     `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
	AssetPaths             []string          `pulumi:"assetPaths,optional"`
	ArchivePaths           []string          `pulumi:"archivePaths,optional"`
}

func (a *LocalCommandArgs) Annotate(an infer.Annotator) {
	an.Describe(&a.Create, "The command to run once on resource creation (and on update when `update` is unset).")
	an.Describe(&a.Update, "The command to run when the resource is updated; if empty, `create` runs instead.")
	an.Describe(&a.Delete, "The command to run on resource deletion, with PULUMI_COMMAND_STDOUT/STDERR set.")
	an.Describe(&a.Dir, "The directory to run the command from.")
	an.Describe(&a.Environment, "Additional environment variables available to the command's process.")
	an.Describe(&a.Interpreter, "The program and arguments to run the command; defaults to [\"/bin/sh\", \"-c\"].")
	an.Describe(&a.Stdin, "A string passed to the command's process as standard input.")
	an.Describe(&a.Triggers, "The resource is replaced when any of these values changes.")
	an.Describe(&a.Logging, "Which of stdout and stderr are logged; defaults to stdoutAndStderr.")
	an.Describe(&a.AddPreviousOutputInEnv, "Whether update and delete see the previous stdout and stderr as PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR; defaults to true.")
	an.Describe(&a.AssetPaths, "Not implemented by this stand-in.")
	an.Describe(&a.ArchivePaths, "Not implemented by this stand-in.")
}

// LocalCommandState is command:local:Command's state: the inputs, stdout and stderr.
type LocalCommandState struct {
	LocalCommandArgs
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

func (s *LocalCommandState) Annotate(a infer.Annotator) {
	a.Describe(&s.Stdout, "The standard output of the command's process.")
	a.Describe(&s.Stderr, "The standard error of the command's process.")
}

func (c *LocalCommand) Annotate(a infer.Annotator) {
	a.SetToken("local", "Command")
	a.Describe(c, "A local command to be executed (stand-in for pulumi-command's command:local:Command).")
}

func (c *LocalCommand) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[LocalCommandArgs], error) {
	args, failures, err := infer.DefaultCheck[LocalCommandArgs](ctx, req.NewInputs)
	if err != nil || len(failures) > 0 {
		return infer.CheckResponse[LocalCommandArgs]{Inputs: args, Failures: failures}, err
	}
	failures = append(failures, checkLogging((*Logging)(args.Logging))...)
	if err := unsupportedPaths(args.AssetPaths, args.ArchivePaths); err != nil {
		failures = append(failures, p.CheckFailure{Property: "assetPaths", Reason: err.Error()})
	}
	if args.Interpreter != nil && len(args.Interpreter) == 0 {
		failures = append(failures, p.CheckFailure{Property: "interpreter", Reason: "interpreter must name a program"})
	}
	return infer.CheckResponse[LocalCommandArgs]{Inputs: args, Failures: failures}, nil
}

func checkLogging(l *Logging) []p.CheckFailure {
	if l != nil && *l != "" && !l.valid() {
		return []p.CheckFailure{{Property: "logging", Reason: fmt.Sprintf(
			"logging %q: expected one of stdout, stderr, stdoutAndStderr, none", string(*l))}}
	}
	return nil
}

func (c *LocalCommand) Create(ctx context.Context, req infer.CreateRequest[LocalCommandArgs]) (infer.CreateResponse[LocalCommandState], error) {
	state := LocalCommandState{LocalCommandArgs: req.Inputs}
	if req.DryRun {
		return infer.CreateResponse[LocalCommandState]{ID: "", Output: state}, nil
	}
	id := newID(req.Name)
	if err := unsupportedPaths(req.Inputs.AssetPaths, req.Inputs.ArchivePaths); err != nil {
		return infer.CreateResponse[LocalCommandState]{}, err
	}
	if req.Inputs.Create != nil {
		stdout, stderr, err := c.run(ctx, "create", *req.Inputs.Create, req.Inputs, nil)
		if err != nil {
			return infer.CreateResponse[LocalCommandState]{}, err
		}
		state.Stdout, state.Stderr = stdout, stderr
	}
	return infer.CreateResponse[LocalCommandState]{ID: id, Output: state}, nil
}

func (c *LocalCommand) Update(ctx context.Context, req infer.UpdateRequest[LocalCommandArgs, LocalCommandState]) (infer.UpdateResponse[LocalCommandState], error) {
	state := LocalCommandState{LocalCommandArgs: req.Inputs}
	if req.DryRun {
		return infer.UpdateResponse[LocalCommandState]{Output: state}, nil
	}
	if err := unsupportedPaths(req.Inputs.AssetPaths, req.Inputs.ArchivePaths); err != nil {
		return infer.UpdateResponse[LocalCommandState]{}, err
	}
	command := req.Inputs.Update
	if command == nil {
		command = req.Inputs.Create
	}
	if command == nil {
		state.Stdout, state.Stderr = req.State.Stdout, req.State.Stderr
		return infer.UpdateResponse[LocalCommandState]{Output: state}, nil
	}
	previous := [2]string{req.State.Stdout, req.State.Stderr}
	stdout, stderr, err := c.run(ctx, "update", *command, req.Inputs, &previous)
	if err != nil {
		return infer.UpdateResponse[LocalCommandState]{}, err
	}
	state.Stdout, state.Stderr = stdout, stderr
	return infer.UpdateResponse[LocalCommandState]{Output: state}, nil
}

func (c *LocalCommand) Delete(ctx context.Context, req infer.DeleteRequest[LocalCommandState]) (infer.DeleteResponse, error) {
	if req.State.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	previous := [2]string{req.State.Stdout, req.State.Stderr}
	_, _, err := c.run(ctx, "delete", *req.State.Delete, req.State.LocalCommandArgs, &previous)
	return infer.DeleteResponse{}, err
}

// Read (refresh) keeps the state as it is: there is nothing to read back from a command.
func (c *LocalCommand) Read(_ context.Context, req infer.ReadRequest[LocalCommandArgs, LocalCommandState]) (infer.ReadResponse[LocalCommandArgs, LocalCommandState], error) {
	return infer.ReadResponse[LocalCommandArgs, LocalCommandState]{ID: req.ID, Inputs: req.Inputs, State: req.State}, nil
}

func (c *LocalCommand) run(ctx context.Context, op, command string, args LocalCommandArgs, previous *[2]string) (string, string, error) {
	inv := invocation{
		op:      op,
		command: command,
		env:     commandEnv(args.Environment, previous, args.AddPreviousOutputInEnv),
		stdin:   args.Stdin,
		logging: logging((*Logging)(args.Logging)),
		logf:    c.logf,
	}
	interpreter := args.Interpreter
	if len(interpreter) == 0 {
		interpreter = defaultInterpreter
	}
	return inv.run(ctx, localExecutor(interpreter, deref(args.Dir)))
}

// localExecutor runs a command as the last argument of interpreter, in dir (when set), with the
// provider's environment plus env.
func localExecutor(interpreter []string, dir string) executor {
	return func(ctx context.Context, command string, env map[string]string, stdin *string, stdout, stderr io.Writer) (int, error) {
		args := append(append([]string{}, interpreter[1:]...), command)
		cmd := exec.CommandContext(ctx, interpreter[0], args...)
		cmd.Dir = dir
		cmd.Env = os.Environ()
		for _, k := range sortedKeys(env) {
			cmd.Env = append(cmd.Env, k+"="+env[k])
		}
		if stdin != nil {
			cmd.Stdin = strings.NewReader(*stdin)
		}
		cmd.Stdout = stdout
		cmd.Stderr = stderr
		err := cmd.Run()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode() >= 0 {
			return exitErr.ExitCode(), nil
		}
		if err != nil {
			return -1, err
		}
		return 0, nil
	}
}
