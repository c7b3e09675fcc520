package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/pulumi/pulumi-go-provider/infer"
)

type networkEndpoint = network.EndpointSettings

// logTailLines is how many of a failed container's last log lines an error shows.
const logTailLines = 20

func (Container) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[ContainerArgs], error) {
	args, failures, err := infer.DefaultCheck[ContainerArgs](ctx, req.NewInputs)
	if err == nil && len(failures) == 0 {
		args.Name = autoNameIfUnset(args.Name, req.Name, req.OldInputs, req.NewInputs)
	}
	return infer.CheckResponse[ContainerArgs]{Inputs: args, Failures: failures}, err
}

func (Container) Create(ctx context.Context, req infer.CreateRequest[ContainerArgs]) (infer.CreateResponse[ContainerState], error) {
	in := req.Inputs
	state := ContainerState{ContainerArgs: in}
	if req.DryRun {
		// Inputs unknown in a preview read as zero values here: nothing is checked yet.
		return infer.CreateResponse[ContainerState]{Output: state}, nil
	}
	spec, err := buildCreateSpec(&in)
	if err != nil {
		return infer.CreateResponse[ContainerState]{}, err
	}
	c, err := docker(ctx)
	if err != nil {
		return infer.CreateResponse[ContainerState]{}, err
	}
	if _, err := findImage(ctx, in.Image, ""); err != nil {
		return infer.CreateResponse[ContainerState]{}, fmt.Errorf("unable to create container with image %s: %w", in.Image, err)
	}
	name := str(in.Name)
	created, err := c.ContainerCreate(ctx, spec.config, spec.host, &network.NetworkingConfig{}, spec.platform, name)
	if err != nil {
		return infer.CreateResponse[ContainerState]{}, fmt.Errorf("creating container %s: %w", name, err)
	}
	inspect, err := setUpContainer(ctx, c, created.ID, &in, &state)
	if err != nil {
		// Nothing half-made is left behind: the error carries what there is to know.
		_ = c.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		return infer.CreateResponse[ContainerState]{}, fmt.Errorf("container %s: %w", name, err)
	}
	readContainer(&state, inspect)
	return infer.CreateResponse[ContainerState]{ID: created.ID, Output: state}, nil
}

// setUpContainer does what follows the create: networks, uploads, start, and the waits.
func setUpContainer(ctx context.Context, c *client.Client, id string, in *ContainerArgs, state *ContainerState) (*container.InspectResponse, error) {
	if len(in.NetworksAdvanced) > 0 {
		// Created on the default network, it is moved to the ones given.
		if err := c.NetworkDisconnect(ctx, "bridge", id, false); err != nil &&
			!strings.Contains(err.Error(), "is not connected to") {
			return nil, fmt.Errorf("disconnecting from the default network: %w", err)
		}
		for _, n := range in.NetworksAdvanced {
			if err := c.NetworkConnect(ctx, n.Name, id, endpointSettings(n)); err != nil {
				return nil, fmt.Errorf("connecting to network %s: %w", n.Name, err)
			}
		}
	}
	if len(in.Uploads) > 0 {
		archive, err := uploadArchive(in.Uploads)
		if err != nil {
			return nil, err
		}
		if err := c.CopyToContainer(ctx, id, "/", archive, container.CopyToContainerOptions{}); err != nil {
			return nil, fmt.Errorf("uploading files: %w", err)
		}
	}
	if flag(in.Start, true) {
		if err := c.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			return nil, fmt.Errorf("starting: %w", err)
		}
		if flag(in.Wait, false) {
			if err := waitHealthy(ctx, c, id, time.Duration(num(in.WaitTimeout))*time.Second); err != nil {
				return nil, err
			}
		}
		if flag(in.Attach, false) {
			if err := attach(ctx, c, id, in, state); err != nil {
				return nil, err
			}
		} else if flag(in.MustRun, true) {
			timeout := time.Duration(num(in.ContainerReadRefreshTimeoutMilliseconds)) * time.Millisecond
			if timeout <= 0 {
				timeout = defaultReadRefreshTimeoutMs * time.Millisecond
			}
			if err := waitRunning(ctx, c, id, timeout); err != nil {
				return nil, err
			}
		}
	}
	inspect, err := c.ContainerInspect(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("inspecting: %w", err)
	}
	return &inspect, nil
}

// runningSettle is how long a container that was seen running must stay up for Create to
// count it as running (a command that exits at once is seen running first).
const runningSettle = time.Second

// waitRunning waits for the container to be running, and still running runningSettle later;
// it fails at once when it stopped for good (no restart policy to bring it back), and after
// `timeout` otherwise, with the tail of its logs either way.
func waitRunning(ctx context.Context, c *client.Client, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var runningSince time.Time
	for {
		inspect, err := c.ContainerInspect(ctx, id)
		if err != nil {
			return fmt.Errorf("inspecting: %w", err)
		}
		st := inspect.State
		if st != nil && st.Running && !st.Restarting {
			if runningSince.IsZero() {
				runningSince = time.Now()
			}
			if time.Since(runningSince) >= runningSettle {
				return nil
			}
		} else {
			runningSince = time.Time{}
		}
		stopped := st != nil && (st.Status == "exited" || st.Status == "dead") &&
			(inspect.HostConfig == nil || inspect.HostConfig.RestartPolicy.Name == "" ||
				inspect.HostConfig.RestartPolicy.Name == "no")
		if stopped || (runningSince.IsZero() && time.Now().After(deadline)) {
			status, code := "unknown", 0
			if st != nil {
				status, code = st.Status, st.ExitCode
			}
			what := "stopped"
			if !stopped {
				what = "not running after " + timeout.String()
			}
			return fmt.Errorf("%s (status %s, exit code %d), and must run (mustRun); its last log lines:\n%s",
				what, status, code, logTail(ctx, c, id, inspect.Config != nil && inspect.Config.Tty))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitHealthy waits for the container's healthcheck to report healthy (`wait`).
func waitHealthy(ctx context.Context, c *client.Client, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		inspect, err := c.ContainerInspect(ctx, id)
		if err != nil {
			return fmt.Errorf("inspecting: %w", err)
		}
		if inspect.State == nil || inspect.State.Health == nil {
			return errors.New("`wait` is set, but the container has no healthcheck: " +
				"remove `wait` or add a `healthcheck`")
		}
		if inspect.State.Health.Status == "healthy" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("did not become healthy within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// attach waits for the container to exit, and with `logs` keeps its output (containerLogs).
func attach(ctx context.Context, c *client.Client, id string, in *ContainerArgs, state *ContainerState) error {
	waitC, errC := c.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case err := <-errC:
		if err != nil {
			return fmt.Errorf("waiting for the end of its execution: %w", err)
		}
	case <-waitC:
	}
	if flag(in.Logs, false) {
		out, err := readLogs(ctx, c, id, "all", flag(in.Tty, false))
		if err != nil {
			return err
		}
		state.ContainerLogs = ptr(out)
	}
	return nil
}

func readLogs(ctx context.Context, c *client.Client, id, tail string, tty bool) (string, error) {
	rc, err := c.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: tail})
	if err != nil {
		return "", fmt.Errorf("reading its logs: %w", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if tty {
		_, err = io.Copy(&buf, rc)
	} else {
		_, err = stdcopy.StdCopy(&buf, &buf, rc)
	}
	return buf.String(), err
}

func logTail(ctx context.Context, c *client.Client, id string, tty bool) string {
	out, err := readLogs(ctx, c, id, fmt.Sprint(logTailLines), tty)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if strings.TrimSpace(out) == "" {
		return "(none)"
	}
	return strings.TrimRight(out, "\n")
}

func (Container) Read(ctx context.Context, req infer.ReadRequest[ContainerArgs, ContainerState]) (infer.ReadResponse[ContainerArgs, ContainerState], error) {
	c, err := docker(ctx)
	if err != nil {
		return infer.ReadResponse[ContainerArgs, ContainerState]{}, err
	}
	inspect, err := c.ContainerInspect(ctx, req.ID)
	if isNotFound(err) {
		return infer.ReadResponse[ContainerArgs, ContainerState]{}, nil // gone: deleted
	}
	if err != nil {
		return infer.ReadResponse[ContainerArgs, ContainerState]{}, fmt.Errorf("inspecting container %s: %w", req.ID, err)
	}
	state := req.State
	readContainer(&state, &inspect)
	return infer.ReadResponse[ContainerArgs, ContainerState]{
		ID:     inspect.ID,
		Inputs: readInputs(req.Inputs, state.ContainerArgs, containerReadBack),
		State:  state,
	}, nil
}

// Update applies the inputs that do not replace: mustRun false -> true starts the container;
// restart, maxRetryCount, memory*, cpuShares, cpuSet and device*Bps/Iops go to `docker
// update`; the others only change the state.
func (Container) Update(ctx context.Context, req infer.UpdateRequest[ContainerArgs, ContainerState]) (infer.UpdateResponse[ContainerState], error) {
	old, in := req.State, req.Inputs
	state := ContainerState{ContainerArgs: in, Bridge: old.Bridge, ContainerLogs: old.ContainerLogs,
		ExitCode: old.ExitCode, NetworkDatas: old.NetworkDatas}
	if req.DryRun {
		return infer.UpdateResponse[ContainerState]{Output: state}, nil
	}
	c, err := docker(ctx)
	if err != nil {
		return infer.UpdateResponse[ContainerState]{}, err
	}
	if !flag(old.MustRun, true) && flag(in.MustRun, true) && flag(in.Start, true) {
		if err := c.ContainerStart(ctx, req.ID, container.StartOptions{}); err != nil {
			return infer.UpdateResponse[ContainerState]{}, fmt.Errorf("starting container %s: %w", str(in.Name), err)
		}
	}
	if resourcesChanged(&old.ContainerArgs, &in) {
		spec, err := buildCreateSpec(&in)
		if err != nil {
			return infer.UpdateResponse[ContainerState]{}, err
		}
		r := spec.host.Resources
		update := container.UpdateConfig{
			RestartPolicy: spec.host.RestartPolicy,
			Resources: container.Resources{
				CPUShares: r.CPUShares, Memory: r.Memory, MemoryReservation: r.MemoryReservation,
				MemorySwap: r.MemorySwap, CpusetCpus: r.CpusetCpus,
				BlkioDeviceReadBps: r.BlkioDeviceReadBps, BlkioDeviceReadIOps: r.BlkioDeviceReadIOps,
				BlkioDeviceWriteBps: r.BlkioDeviceWriteBps, BlkioDeviceWriteIOps: r.BlkioDeviceWriteIOps,
			},
		}
		if _, err := c.ContainerUpdate(ctx, req.ID, update); err != nil {
			return infer.UpdateResponse[ContainerState]{}, fmt.Errorf("updating container %s: %w", str(in.Name), err)
		}
	}
	inspect, err := c.ContainerInspect(ctx, req.ID)
	if err != nil {
		return infer.UpdateResponse[ContainerState]{}, fmt.Errorf("inspecting container %s: %w", str(in.Name), err)
	}
	readContainer(&state, &inspect)
	return infer.UpdateResponse[ContainerState]{Output: state}, nil
}

func resourcesChanged(old, in *ContainerArgs) bool {
	return str(old.Restart) != str(in.Restart) || num(old.MaxRetryCount) != num(in.MaxRetryCount) ||
		num(old.CPUShares) != num(in.CPUShares) || num(old.Memory) != num(in.Memory) ||
		num(old.MemoryReservation) != num(in.MemoryReservation) || num(old.MemorySwap) != num(in.MemorySwap) ||
		str(old.CPUSet) != str(in.CPUSet) ||
		jsonOf(canonJSON(old.DeviceReadBps)) != jsonOf(canonJSON(in.DeviceReadBps)) ||
		jsonOf(canonJSON(old.DeviceReadIops)) != jsonOf(canonJSON(in.DeviceReadIops)) ||
		jsonOf(canonJSON(old.DeviceWriteBps)) != jsonOf(canonJSON(in.DeviceWriteBps)) ||
		jsonOf(canonJSON(old.DeviceWriteIops)) != jsonOf(canonJSON(in.DeviceWriteIops))
}

// canonJSON is a typed value in diff.go's comparable form (as a set).
func canonJSON(v any) any {
	var plainV any
	_ = json.Unmarshal([]byte(jsonOf(v)), &plainV)
	return canon(plainV, &spec{set: true})
}

// Delete stops the container first when destroyGraceSeconds > 0 (unless attached), then
// force-removes it, with its anonymous volumes unless removeVolumes is false.
func (Container) Delete(ctx context.Context, req infer.DeleteRequest[ContainerState]) (infer.DeleteResponse, error) {
	c, err := docker(ctx)
	if err != nil {
		return infer.DeleteResponse{}, err
	}
	s := req.State
	if grace := num(s.DestroyGraceSeconds); grace > 0 && !flag(s.Attach, false) {
		if err := c.ContainerStop(ctx, req.ID, container.StopOptions{Timeout: &grace}); err != nil && !isNotFound(err) {
			return infer.DeleteResponse{}, fmt.Errorf("stopping container %s: %w", str(s.Name), err)
		}
	}
	err = c.ContainerRemove(ctx, req.ID, container.RemoveOptions{Force: true, RemoveVolumes: flag(s.RemoveVolumes, true)})
	if err != nil && !isNotFound(err) && !strings.Contains(err.Error(), "is already in progress") {
		return infer.DeleteResponse{}, fmt.Errorf("removing container %s: %w", str(s.Name), err)
	}
	// Removal may finish in the background (a removal already in progress, or rm).
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := c.ContainerInspect(ctx, req.ID); isNotFound(err) {
			return infer.DeleteResponse{}, nil
		}
		if time.Now().After(deadline) {
			return infer.DeleteResponse{}, fmt.Errorf("container %s: still present a minute after its removal", str(s.Name))
		}
		select {
		case <-ctx.Done():
			return infer.DeleteResponse{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
