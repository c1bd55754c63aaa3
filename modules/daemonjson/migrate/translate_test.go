package migrate

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

var cmpOpts = []cmp.Option{cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, network.Port{})}

const webID = "0123456789abcdef0123456789abcdef"

// webInspect is an inspect answer as Docker 26 gives it for
// docker run -d --name web --restart always --network front --ip 10.77.0.10
// --network-alias www -p 8080:80 -m 64m -v data:/data -e FOO=bar -l role=web
// -u 1000 -w /srv app:1 httpd -f
func webInspect() container.InspectResponse {
	return container.InspectResponse{
		ID:   webID,
		Name: "/web",
		Config: &container.Config{
			Hostname: webID[:12], User: "1000", Env: []string{"FOO=bar", "PATH=/bin"},
			Cmd: []string{"httpd", "-f"}, Image: "app:1", WorkingDir: "/srv",
			Labels:       map[string]string{"role": "web"},
			ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}},
		},
		HostConfig: &container.HostConfig{
			Binds:           []string{"data:/data"},
			ContainerIDFile: "/tmp/cid",
			NetworkMode:     "front",
			PortBindings:    network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "8080"}}},
			RestartPolicy:   container.RestartPolicy{Name: container.RestartPolicyAlways},
			Resources:       container.Resources{Memory: 64 << 20},
			MaskedPaths:     []string{"/proc/kcore"},
			ReadonlyPaths:   []string{"/proc/sys"},
			ConsoleSize:     [2]uint{24, 80},
			LogConfig:       container.LogConfig{Type: "json-file"},
		},
		Mounts: []container.MountPoint{{Type: mount.TypeVolume, Name: "data", Source: "/var/lib/docker/volumes/data/_data", Destination: "/data", Driver: "local", RW: true}},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"front": {
				IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("10.77.0.10")},
				Aliases:    []string{"www"},
				NetworkID:  "n1", EndpointID: "e1", IPAddress: netip.MustParseAddr("10.77.0.10"), IPPrefixLen: 24,
				Gateway: netip.MustParseAddr("10.77.0.1"), MacAddress: network.HardwareAddr{2, 66, 10, 77, 0, 10},
				DNSNames: []string{"web", webID[:12], "www"},
			},
		}},
	}
}

func TestCreateOptions(t *testing.T) {
	wantWeb := func() client.ContainerCreateOptions {
		in := webInspect()
		cfg := *in.Config
		cfg.Hostname = ""
		hc := *in.HostConfig
		hc.ContainerIDFile, hc.MaskedPaths, hc.ReadonlyPaths, hc.ConsoleSize = "", nil, nil, [2]uint{}
		return client.ContainerCreateOptions{
			Name: "web", Config: &cfg, HostConfig: &hc,
			NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
				"front": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("10.77.0.10")}, Aliases: []string{"www"}},
			}},
		}
	}
	tests := []struct {
		name   string
		c      Container
		others []Container
		images []Image
		want   func() client.ContainerCreateOptions
	}{
		{"a web server", Container{Name: "web", ID: webID, Inspect: webInspect()}, nil, nil, wantWeb},
		{"its image still has the tag", Container{Name: "web", ID: webID, ImageID: "sha256:old", Inspect: webInspect()}, nil,
			[]Image{{ID: "sha256:old", Tags: []string{"app:1", "app:latest"}}}, wantWeb},
		{"the tag moved on to a newer image", Container{Name: "web", ID: webID, ImageID: "sha256:old", Inspect: webInspect()}, nil,
			[]Image{{ID: "sha256:old"}, {ID: "sha256:new", Tags: []string{"app:1"}}}, func() client.ContainerCreateOptions {
				o := wantWeb()
				o.Config.Image = "sha256:old"
				return o
			}},
		{"a familiar name matches the normalized tag", Container{Name: "web", ID: webID, ImageID: "sha256:n", Inspect: func() container.InspectResponse {
			in := webInspect()
			in.Config.Image = "nginx"
			return in
		}()}, nil, []Image{{ID: "sha256:n", Tags: []string{"nginx:latest"}}}, func() client.ContainerCreateOptions {
			o := wantWeb()
			o.Config.Image = "nginx"
			return o
		}},
		{"a short ID stays", Container{Name: "web", ID: webID, ImageID: "sha256:abcdef123456789", Inspect: func() container.InspectResponse {
			in := webInspect()
			in.Config.Image = "abcdef123456"
			return in
		}()}, nil, []Image{{ID: "sha256:abcdef123456789"}}, func() client.ContainerCreateOptions {
			o := wantWeb()
			o.Config.Image = "abcdef123456"
			return o
		}},
		{"a hostname the operator chose stays", Container{Name: "web", ID: webID, Inspect: func() container.InspectResponse {
			in := webInspect()
			in.Config.Hostname = "www1"
			return in
		}()}, nil, nil, func() client.ContainerCreateOptions {
			o := wantWeb()
			o.Config.Hostname = "www1"
			return o
		}},
		{"old daemons list the short ID among the aliases", Container{Name: "web", ID: webID, Inspect: func() container.InspectResponse {
			in := webInspect()
			in.NetworkSettings.Networks["front"].Aliases = []string{webID[:12], "www"}
			return in
		}()}, nil, nil, wantWeb},
		{"a dynamic address is not pinned", Container{Name: "web", ID: webID, Inspect: func() container.InspectResponse {
			in := webInspect()
			in.NetworkSettings.Networks["front"].IPAMConfig = nil
			return in
		}()}, nil, nil, func() client.ContainerCreateOptions {
			o := wantWeb()
			o.NetworkingConfig.EndpointsConfig["front"].IPAMConfig = nil
			return o
		}},
		{"an anonymous volume gets its name", Container{Name: "web", ID: webID, Inspect: func() container.InspectResponse {
			in := webInspect()
			in.Mounts = append(in.Mounts, container.MountPoint{Type: mount.TypeVolume, Name: "f00d", Destination: "/cache", RW: true},
				container.MountPoint{Type: mount.TypeVolume, Name: "beef", Destination: "/ro"})
			return in
		}()}, nil, nil, func() client.ContainerCreateOptions {
			o := wantWeb()
			o.HostConfig.Mounts = []mount.Mount{
				{Type: mount.TypeVolume, Source: "f00d", Target: "/cache"},
				{Type: mount.TypeVolume, Source: "beef", Target: "/ro", ReadOnly: true},
			}
			return o
		}},
		{"references by ID become names", Container{Name: "side", ID: "side0000000000000", Inspect: container.InspectResponse{
			ID: "side0000000000000", Config: &container.Config{Image: "app:1", Hostname: webID[:12], Domainname: "example.org",
				ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}}},
			HostConfig: &container.HostConfig{
				NetworkMode: container.NetworkMode("container:" + webID), PidMode: container.PidMode("container:" + webID),
				IpcMode: container.IpcMode("container:" + webID), VolumesFrom: []string{webID + ":ro"},
			},
			// Docker reports the shared network's endpoint: it is web's.
			NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{"front": {}}},
			// Inherited through --volumes-from: not named again.
			Mounts: []container.MountPoint{{Type: mount.TypeVolume, Name: "data", Destination: "/data", RW: true}},
		}}, []Container{{Name: "web", ID: webID, Inspect: webInspect()}}, nil, func() client.ContainerCreateOptions {
			return client.ContainerCreateOptions{
				Name: "side", Config: &container.Config{Image: "app:1"},
				HostConfig: &container.HostConfig{NetworkMode: "container:web", PidMode: "container:web", IpcMode: "container:web", VolumesFrom: []string{"web:ro"}},
			}
		}},
		{"the host's network keeps no hostname, but its ports", Container{Name: "h", ID: "h000000000000000", Inspect: container.InspectResponse{
			ID: "h000000000000000", Config: &container.Config{Image: "app:1", Hostname: "myhost", ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}}},
			HostConfig: &container.HostConfig{NetworkMode: "host"},
		}}, nil, nil, func() client.ContainerCreateOptions {
			return client.ContainerCreateOptions{Name: "h", Config: &container.Config{Image: "app:1", ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}}}, HostConfig: &container.HostConfig{NetworkMode: "host"}}
		}},
		{"links in create's form", Container{Name: "app", ID: "app0000000000000", Inspect: container.InspectResponse{
			ID: "app0000000000000", Config: &container.Config{Image: "app:1"},
			HostConfig: &container.HostConfig{Links: []string{"/db:/app/database"}},
		}}, nil, nil, func() client.ContainerCreateOptions {
			return client.ContainerCreateOptions{Name: "app", Config: &container.Config{Image: "app:1"}, HostConfig: &container.HostConfig{Links: []string{"db:database"}}}
		}},
		{"an image known only by ID", Container{Name: "x", ID: "x000000000000000", ImageID: "sha256:abc", Inspect: container.InspectResponse{
			ID: "x000000000000000", Config: &container.Config{}, HostConfig: &container.HostConfig{NetworkMode: "none"},
			NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{"none": {}}},
		}}, nil, nil, func() client.ContainerCreateOptions {
			return client.ContainerCreateOptions{Name: "x", Config: &container.Config{Image: "sha256:abc"}, HostConfig: &container.HostConfig{NetworkMode: "none"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &Inventory{Containers: append([]Container{tt.c}, tt.others...), Images: tt.images}
			before := webInspect()
			got, err := inv.CreateOptions(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want(), got, cmpOpts...); diff != "" {
				t.Errorf("CreateOptions (-want +got):\n%s", diff)
			}
			// The inventory is not changed by translating it.
			if tt.c.ID == webID {
				if diff := cmp.Diff(before, tt.c.Inspect, cmpOpts...); diff != "" && tt.name == "a web server" {
					t.Errorf("CreateOptions changed its input:\n%s", diff)
				}
			}
		})
	}
	if _, err := (&Inventory{}).CreateOptions(Container{Name: "bare"}); err == nil {
		t.Error("CreateOptions without a configuration: no error")
	}
}

func TestNetworkOptions(t *testing.T) {
	tr, f := true, false
	full := Network{Name: "front", Inspect: network.Inspect{Network: network.Network{
		Name: "front", Driver: "bridge", Scope: "local", EnableIPv4: true, EnableIPv6: true, Internal: true, Attachable: true,
		IPAM: network.IPAM{Driver: "default", Config: []network.IPAMConfig{
			{Subnet: netip.MustParsePrefix("10.77.0.0/24"), Gateway: netip.MustParseAddr("10.77.0.1"),
				AuxAddress: map[string]netip.Addr{"router": netip.MustParseAddr("10.77.0.2")}},
			{Subnet: netip.MustParsePrefix("fd00:77::/64")},
		}},
		Options: map[string]string{"com.docker.network.bridge.name": "br-front", "com.docker.network.driver.mtu": "1400"},
		Labels:  map[string]string{"app": "x"},
	}}}
	tests := []struct {
		name string
		n    Network
		api  string
		want client.NetworkCreateOptions
	}{
		{"everything the operator set", full, "1.45", client.NetworkCreateOptions{
			Driver: "bridge", Internal: true, Attachable: true, EnableIPv6: &tr,
			IPAM:    &network.IPAM{Driver: "default", Config: full.Inspect.IPAM.Config},
			Options: full.Inspect.Options, Labels: full.Inspect.Labels,
		}},
		{"an old daemon's silence on IPv4 is not false", Network{Name: "n", Inspect: network.Inspect{Network: network.Network{Driver: "bridge"}}}, "1.45",
			client.NetworkCreateOptions{Driver: "bridge", EnableIPv6: &f}},
		{"IPv4 off on a daemon that says so", Network{Name: "n", Inspect: network.Inspect{Network: network.Network{Driver: "bridge"}}}, "1.48",
			client.NetworkCreateOptions{Driver: "bridge", EnableIPv6: &f, EnableIPv4: &f}},
		{"config-only and config-from", Network{Name: "n", Inspect: network.Inspect{Network: network.Network{Driver: "macvlan", ConfigFrom: network.ConfigReference{Network: "conf"}}}}, "1.45",
			client.NetworkCreateOptions{Driver: "macvlan", ConfigFrom: "conf", EnableIPv6: &f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NetworkOptions(tt.n, tt.api)
			if diff := cmp.Diff(tt.want, got, cmpOpts...); diff != "" {
				t.Errorf("NetworkOptions (-want +got):\n%s", diff)
			}
		})
	}
}
