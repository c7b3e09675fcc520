package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/image"
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
)

// RemoteImage is docker:index/remoteImage:RemoteImage (SDK remote_image.py).
type RemoteImage struct{}

// RemoteImageArgs are its inputs (all but `build`, which Check refuses).
type RemoteImageArgs struct {
	Name         string            `pulumi:"name"`
	ForceRemove  *bool             `pulumi:"forceRemove,optional"`
	KeepLocally  *bool             `pulumi:"keepLocally,optional"`
	Platform     *string           `pulumi:"platform,optional"`
	PullTriggers []string          `pulumi:"pullTriggers,optional"`
	Triggers     map[string]string `pulumi:"triggers,optional"`
}

// RemoteImageState is its state: the inputs and the image's ID and repo digest.
type RemoteImageState struct {
	RemoteImageArgs
	ImageID    string `pulumi:"imageId"`
	RepoDigest string `pulumi:"repoDigest"`
}

func (r *RemoteImage) Annotate(a infer.Annotator) {
	a.SetToken("index/remoteImage", "RemoteImage")
	a.Describe(r, "Pulls a Docker image to the Docker host, or uses the local image of that name.")
}

func (a *RemoteImageArgs) Annotate(an infer.Annotator) {
	an.Describe(&a.Name, "The name of the Docker image, including any tags or SHA256 repo digests.")
	an.Describe(&a.ForceRemove, "If true, then the image is removed forcibly when the resource is destroyed.")
	an.Describe(&a.KeepLocally, "If true, then the Docker image won't be deleted on destroy operation.")
	an.Describe(&a.Platform, "The platform to use when pulling the image.")
	an.Describe(&a.PullTriggers, "List of values which cause an image pull when changed.")
	an.Describe(&a.Triggers, "A map of arbitrary strings that, when changed, force a replacement.")
	an.SetDefault(&a.Platform, "")
}

func (s *RemoteImageState) Annotate(a infer.Annotator) {
	a.Describe(&s.ImageID, "The ID of the image (as seen when executing `docker inspect` on the image).")
	a.Describe(&s.RepoDigest, "The image sha256 digest in the form of `repo[:tag]@sha256:<hash>`.")
}

var remoteImageSpec = resourceSpec{inputs: map[string]*spec{
	"name":         {},
	"forceRemove":  {update: true},
	"keepLocally":  {update: true},
	"platform":     {},
	"pullTriggers": {set: true},
	"triggers":     {kv: true},
}}

func (RemoteImage) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[RemoteImageArgs], error) {
	if _, ok := req.NewInputs.GetOk("build"); ok {
		return infer.CheckResponse[RemoteImageArgs]{Failures: []p.CheckFailure{notImplemented("build")}}, nil
	}
	args, failures, err := infer.DefaultCheck[RemoteImageArgs](ctx, req.NewInputs)
	return infer.CheckResponse[RemoteImageArgs]{Inputs: args, Failures: failures}, err
}

func (RemoteImage) Create(ctx context.Context, req infer.CreateRequest[RemoteImageArgs]) (infer.CreateResponse[RemoteImageState], error) {
	state := RemoteImageState{RemoteImageArgs: req.Inputs}
	if req.DryRun {
		return infer.CreateResponse[RemoteImageState]{Output: state}, nil
	}
	img, err := findImage(ctx, req.Inputs.Name, str(req.Inputs.Platform))
	if err != nil {
		return infer.CreateResponse[RemoteImageState]{}, err
	}
	setImageState(&state, img)
	return infer.CreateResponse[RemoteImageState]{ID: img.ID + req.Inputs.Name, Output: state}, nil
}

func (RemoteImage) Read(ctx context.Context, req infer.ReadRequest[RemoteImageArgs, RemoteImageState]) (infer.ReadResponse[RemoteImageArgs, RemoteImageState], error) {
	name := req.State.Name
	if name == "" {
		name = req.Inputs.Name
	}
	img, err := localImage(ctx, name)
	if err != nil {
		return infer.ReadResponse[RemoteImageArgs, RemoteImageState]{}, err
	}
	if img == nil {
		return infer.ReadResponse[RemoteImageArgs, RemoteImageState]{}, nil // gone: deleted
	}
	state := req.State
	state.Name = name
	setImageState(&state, img)
	inputs := req.Inputs
	inputs.Name = name
	return infer.ReadResponse[RemoteImageArgs, RemoteImageState]{ID: img.ID + name, Inputs: inputs, State: state}, nil
}

// Update (keepLocally, forceRemove: the only inputs that do not replace) looks the image up
// again, as upstream does.
func (RemoteImage) Update(ctx context.Context, req infer.UpdateRequest[RemoteImageArgs, RemoteImageState]) (infer.UpdateResponse[RemoteImageState], error) {
	state := RemoteImageState{RemoteImageArgs: req.Inputs, ImageID: req.State.ImageID, RepoDigest: req.State.RepoDigest}
	if req.DryRun {
		return infer.UpdateResponse[RemoteImageState]{Output: state}, nil
	}
	img, err := findImage(ctx, req.Inputs.Name, str(req.Inputs.Platform))
	if err != nil {
		return infer.UpdateResponse[RemoteImageState]{}, err
	}
	setImageState(&state, img)
	return infer.UpdateResponse[RemoteImageState]{Output: state}, nil
}

func (RemoteImage) Delete(ctx context.Context, req infer.DeleteRequest[RemoteImageState]) (infer.DeleteResponse, error) {
	if flag(req.State.KeepLocally, false) {
		return infer.DeleteResponse{}, nil
	}
	img, err := localImage(ctx, req.State.Name)
	if err != nil || img == nil {
		return infer.DeleteResponse{}, err
	}
	c, err := docker(ctx)
	if err != nil {
		return infer.DeleteResponse{}, err
	}
	_, err = c.ImageRemove(ctx, req.State.Name, image.RemoveOptions{Force: flag(req.State.ForceRemove, false)})
	if err != nil && !isNotFound(err) {
		return infer.DeleteResponse{}, fmt.Errorf("removing image %s: %w", req.State.Name, err)
	}
	return infer.DeleteResponse{}, nil
}

func setImageState(state *RemoteImageState, img *image.InspectResponse) {
	state.ImageID = img.ID
	state.RepoDigest = repoDigest(state.Name, img.RepoDigests)
}

// localImage is the local image named `name`, or nil when there is none.
func localImage(ctx context.Context, name string) (*image.InspectResponse, error) {
	c, err := docker(ctx)
	if err != nil {
		return nil, err
	}
	img, err := c.ImageInspect(ctx, name)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspecting image %s: %w", name, err)
	}
	return &img, nil
}

// findImage is the local image named `name`, pulled first when there is none.
func findImage(ctx context.Context, name, platform string) (*image.InspectResponse, error) {
	if name == "" {
		return nil, fmt.Errorf("empty image name is not allowed")
	}
	img, err := localImage(ctx, name)
	if err != nil || img != nil {
		return img, err
	}
	c, err := docker(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := c.ImagePull(ctx, name, image.PullOptions{Platform: platform})
	if err != nil {
		return nil, fmt.Errorf("image %s is not present locally and pulling it failed: %w", name, err)
	}
	out, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		return nil, fmt.Errorf("pulling image %s: %w", name, err)
	}
	if msg := pullError(out); msg != "" {
		return nil, fmt.Errorf("image %s is not present locally and pulling it failed: %s", name, msg)
	}
	img, err = localImage(ctx, name)
	if err == nil && img == nil {
		err = fmt.Errorf("image %s: not found after pulling it", name)
	}
	return img, err
}

// pullError is the error a pull's JSON message stream ends with, if any.
func pullError(stream []byte) string {
	for _, line := range strings.Split(string(stream), "\n") {
		if i := strings.Index(line, `"error":`); i >= 0 {
			var msg struct {
				Error string `json:"error"`
			}
			if json.Unmarshal([]byte(line), &msg) == nil && msg.Error != "" {
				return msg.Error
			}
		}
	}
	return ""
}

// repoDigest is the image's repo digest for `name`: the only one, or the one of the same
// repository (the name without its tag), or "".
func repoDigest(name string, digests []string) string {
	switch len(digests) {
	case 0:
		return ""
	case 1:
		return digests[0]
	}
	repo := name
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	for _, d := range digests {
		if strings.HasPrefix(d, repo+"@") {
			return d
		}
	}
	return ""
}
