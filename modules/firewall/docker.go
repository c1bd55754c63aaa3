package firewall

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// DockerNetwork is what the firewall needs to know about a Docker network.
type DockerNetwork struct {
	ID       string
	Name     string
	Driver   string
	Internal bool
	Options  map[string]string
}

// Docker is the part of the Docker Engine API the module uses. The real one
// is dockerAPI; tests use a fake.
type Docker interface {
	// Network returns the network with exactly this name; found is false
	// when there is none.
	Network(ctx context.Context, name string) (n DockerNetwork, found bool, err error)
	// CreateNetwork creates a bridge network, internal or not.
	CreateNetwork(ctx context.Context, name string, internal bool) error
}

// bridgeNameOption is the bridge driver's option that names the interface
// (docker0 for the default bridge, or whatever an operator chose).
const bridgeNameOption = "com.docker.network.bridge.name"

// BridgeName returns the Linux bridge interface of a Docker bridge network:
// the com.docker.network.bridge.name option where set (the default
// network "bridge" has docker0 there), otherwise br-<first 12 of the ID>,
// which is how Docker's bridge driver names them.
func BridgeName(n DockerNetwork) (string, error) {
	if n.Driver != "bridge" {
		return "", fmt.Errorf("network %q uses the %q driver; only bridge networks have a bridge interface to filter", n.Name, n.Driver)
	}
	if name := n.Options[bridgeNameOption]; name != "" {
		return name, nil
	}
	if n.Name == "bridge" {
		return "docker0", nil
	}
	if len(n.ID) < 12 {
		return "", fmt.Errorf("network %q: Docker reported the ID %q, too short to name its bridge", n.Name, n.ID)
	}
	return "br-" + n.ID[:12], nil
}

// dockerAPI is Docker backed by the Engine API (DOCKER_HOST or the local
// socket), with API version negotiation.
type dockerAPI struct{ c *client.Client }

// NewDocker connects to the Docker Engine API as the docker CLI would.
func NewDocker() (Docker, error) { return newDockerAPI(client.FromEnv) }

func newDockerAPI(opts ...client.Opt) (Docker, error) {
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine API client: %w", err)
	}
	return &dockerAPI{c: c}, nil
}

func (d *dockerAPI) Network(ctx context.Context, name string) (DockerNetwork, bool, error) {
	res, err := d.c.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return DockerNetwork{}, false, nil
	}
	if err != nil {
		return DockerNetwork{}, false, fmt.Errorf("inspect docker network %q: %w", name, err)
	}
	n := res.Network
	// Docker also finds networks by ID prefix: "abc" could be some other
	// network's ID. Only an exact name counts.
	if n.Name != name {
		return DockerNetwork{}, false, nil
	}
	return DockerNetwork{ID: n.ID, Name: n.Name, Driver: n.Driver, Internal: n.Internal, Options: n.Options}, true, nil
}

func (d *dockerAPI) CreateNetwork(ctx context.Context, name string, internal bool) error {
	_, err := d.c.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Internal: internal})
	if err != nil {
		return fmt.Errorf("create docker network %q: %w", name, err)
	}
	return nil
}
