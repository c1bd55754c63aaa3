package migrate

import (
	"errors"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
)

// CreateOptions translates a container's inspect answer into the request
// that creates the same container in another root: name, image, command,
// entrypoint, environment, labels, user, working directory, restart
// policy, mounts (anonymous volumes are named, so the new container gets
// the moved data rather than an empty volume), networks with their aliases
// and static addresses, published ports, resources and the rest of the
// host configuration. Container IDs Docker recorded in references
// (--network container:ID, --volumes-from) become names, since the
// recreated containers get new IDs.
//
// It leaves out what the daemon derives itself or what belonged to the
// old container only: the hostname when it was the old ID, the MAC address
// Docker generated, the masked and read-only paths (recomputed from the
// security options), the container ID file.
func (inv *Inventory) CreateOptions(c Container) (client.ContainerCreateOptions, error) {
	byID := map[string]string{}
	byName := map[string]Container{}
	for _, o := range inv.Containers {
		byID[o.ID] = o.Name
		byName[o.Name] = o
	}
	in := c.Inspect
	if in.Config == nil || in.HostConfig == nil {
		return client.ContainerCreateOptions{}, errors.New("the daemon reported no configuration for it")
	}
	cfg := *in.Config
	cfg.Env = slices.Clone(cfg.Env)
	cfg.Cmd = slices.Clone(cfg.Cmd)
	cfg.Entrypoint = slices.Clone(cfg.Entrypoint)
	cfg.Labels = maps.Clone(cfg.Labels)
	cfg.ExposedPorts = maps.Clone(cfg.ExposedPorts)
	cfg.Volumes = maps.Clone(cfg.Volumes)
	cfg.Image = inv.imageRef(c)
	// Docker names the host after the container's ID unless told otherwise.
	if in.ID != "" && cfg.Hostname != "" && strings.HasPrefix(in.ID, cfg.Hostname) {
		cfg.Hostname = ""
	}
	// In another's network namespace (or the host's) the host name and the
	// exposed ports are that one's: inspect shows them, create refuses
	// them ("conflicting options: hostname and the network mode").
	if nm := in.HostConfig.NetworkMode; nm.IsContainer() || nm.IsHost() {
		cfg.Hostname, cfg.Domainname = "", ""
		if nm.IsContainer() {
			cfg.ExposedPorts = nil
		}
	}

	hc := *in.HostConfig
	hc.Binds = slices.Clone(hc.Binds)
	hc.Mounts = slices.Clone(hc.Mounts)
	hc.ContainerIDFile = ""
	hc.MaskedPaths = nil
	hc.ReadonlyPaths = nil
	hc.ConsoleSize = [2]uint{}
	hc.NetworkMode = container.NetworkMode(renameRef(string(hc.NetworkMode), byID))
	hc.PidMode = container.PidMode(renameRef(string(hc.PidMode), byID))
	hc.IpcMode = container.IpcMode(renameRef(string(hc.IpcMode), byID))
	hc.VolumesFrom = slices.Clone(hc.VolumesFrom)
	for i, v := range hc.VolumesFrom {
		name, mode, hasMode := strings.Cut(v, ":")
		if n, ok := byID[name]; ok {
			name = n
		}
		if hasMode {
			name += ":" + mode
		}
		hc.VolumesFrom[i] = name
	}
	hc.Links = slices.Clone(hc.Links)
	for i, l := range hc.Links {
		// Inspect shows "/target:/self/alias"; create takes "target:alias".
		target, alias, _ := strings.Cut(l, ":")
		target = strings.TrimPrefix(target, "/")
		if j := strings.LastIndexByte(alias, '/'); j >= 0 {
			alias = alias[j+1:]
		}
		hc.Links[i] = target + ":" + alias
	}

	// Anonymous volumes: the image's or the -v /path ones, which are in no
	// Binds or Mounts entry. Name them, or the new container gets an empty
	// volume and the moved data sits unused.
	inherited := map[string]bool{} // volumes that come with --volumes-from
	for _, v := range hc.VolumesFrom {
		name, _, _ := strings.Cut(v, ":")
		for _, mp := range byName[name].Inspect.Mounts {
			inherited[mp.Name] = true
		}
	}
	named := map[string]bool{}
	for _, b := range hc.Binds {
		if dst := bindDestination(b); dst != "" {
			named[dst] = true
		}
	}
	for _, m := range hc.Mounts {
		named[m.Target] = true
	}
	for _, mp := range sortedMounts(in.Mounts) {
		if mp.Type != mount.TypeVolume || named[mp.Destination] || mp.Name == "" {
			continue
		}
		if inherited[mp.Name] {
			continue
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: mp.Name, Target: mp.Destination, ReadOnly: !mp.RW})
	}

	var nc *network.NetworkingConfig
	if in.NetworkSettings != nil && len(in.NetworkSettings.Networks) > 0 && !hc.NetworkMode.IsContainer() && !hc.NetworkMode.IsHost() && !hc.NetworkMode.IsNone() {
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
		for name, ep := range in.NetworkSettings.Networks {
			if ep == nil {
				continue
			}
			nc.EndpointsConfig[name] = endpointFor(ep, in.ID)
		}
	}
	return client.ContainerCreateOptions{Name: c.Name, Config: &cfg, HostConfig: &hc, NetworkingConfig: nc}, nil
}

// imageRef is the image to create c from in the new root: the name the
// operator gave when it still names the image c runs, otherwise that
// image's ID (the tag may have moved on to a newer image since c was made;
// recreating c from it would change what c runs).
func (inv *Inventory) imageRef(c Container) string {
	name := ""
	if c.Inspect.Config != nil {
		name = c.Inspect.Config.Image
	}
	if name == "" || c.ImageID == "" {
		if name == "" {
			return c.ImageID
		}
		return name
	}
	var img *Image
	for i := range inv.Images {
		if inv.Images[i].ID == c.ImageID {
			img = &inv.Images[i]
		}
	}
	if img == nil || name == c.ImageID || strings.HasPrefix(strings.TrimPrefix(c.ImageID, "sha256:"), strings.TrimPrefix(name, "sha256:")) {
		return name // not ours to judge (a blocker says so), or an ID already
	}
	want, err := reference.ParseDockerRef(name)
	if err != nil {
		return c.ImageID
	}
	for _, tag := range img.Tags {
		if have, err := reference.ParseDockerRef(tag); err == nil && have.String() == want.String() {
			return name
		}
	}
	return c.ImageID
}

// endpointFor keeps what the operator chose for one network (static
// addresses, aliases, links, driver options, gateway priority) and drops
// what the daemon assigned (endpoint, addresses it allocated, the MAC).
func endpointFor(ep *network.EndpointSettings, id string) *network.EndpointSettings {
	out := &network.EndpointSettings{
		Links:      slices.Clone(ep.Links),
		DriverOpts: maps.Clone(ep.DriverOpts),
		GwPriority: ep.GwPriority,
	}
	if ep.IPAMConfig != nil && (ep.IPAMConfig.IPv4Address.IsValid() || ep.IPAMConfig.IPv6Address.IsValid() || len(ep.IPAMConfig.LinkLocalIPs) > 0) {
		out.IPAMConfig = ep.IPAMConfig.Copy()
	}
	for _, a := range ep.Aliases {
		// Before API 1.45 Docker listed the short ID among the aliases.
		if id != "" && len(a) >= 12 && strings.HasPrefix(id, a) {
			continue
		}
		out.Aliases = append(out.Aliases, a)
	}
	return out
}

// renameRef turns "container:<id>" into "container:<name>".
func renameRef(mode string, byID map[string]string) string {
	ref, ok := strings.CutPrefix(mode, "container:")
	if !ok {
		return mode
	}
	if n, ok := byID[ref]; ok {
		return "container:" + n
	}
	return mode
}

// bindDestination is the container path of a -v SRC:DST[:OPTS] entry.
func bindDestination(b string) string {
	parts := strings.Split(b, ":")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

func sortedMounts(ms []container.MountPoint) []container.MountPoint {
	out := slices.Clone(ms)
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}

// NetworkOptions translates a network's inspect answer into the request
// that creates it again: driver, options, IPAM (the subnets as they are,
// so that addresses and firewall rules stay the same), internal,
// attachable, IPv6, labels. apiVersion is the API version the inspect
// came from: EnableIPv4 exists from 1.47 on, and a false that is only an
// older daemon's silence must not switch IPv4 off.
func NetworkOptions(n Network, apiVersion string) client.NetworkCreateOptions {
	in := n.Inspect
	o := client.NetworkCreateOptions{
		Driver:     in.Driver,
		Internal:   in.Internal,
		Attachable: in.Attachable,
		ConfigOnly: in.ConfigOnly,
		ConfigFrom: in.ConfigFrom.Network,
		Options:    maps.Clone(in.Options),
		Labels:     maps.Clone(in.Labels),
	}
	v6 := in.EnableIPv6
	o.EnableIPv6 = &v6
	if !in.EnableIPv4 && apiVersion != "" && versions.GreaterThanOrEqualTo(apiVersion, "1.47") {
		f := false
		o.EnableIPv4 = &f
	}
	if in.IPAM.Driver != "" || len(in.IPAM.Config) > 0 || len(in.IPAM.Options) > 0 {
		ipam := network.IPAM{Driver: in.IPAM.Driver, Options: maps.Clone(in.IPAM.Options)}
		for _, c := range in.IPAM.Config {
			c.AuxAddress = maps.Clone(c.AuxAddress)
			ipam.Config = append(ipam.Config, c)
		}
		o.IPAM = &ipam
	}
	return o
}
