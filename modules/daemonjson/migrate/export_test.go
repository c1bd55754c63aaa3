package migrate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

func TestParseManifest(t *testing.T) {
	good := func(mod func(*Inventory)) string {
		inv := Inventory{
			FormatVersion: FormatVersion, DockerRootDir: "/var/lib/docker",
			Images:     []Image{{ID: "sha256:a", Tags: []string{"a:1"}, File: "images/000-a.tar"}},
			Networks:   []Network{{Name: "n"}},
			Volumes:    []Volume{{Name: "v", Driver: "local"}},
			Containers: []Container{{Name: "c", Inspect: container.InspectResponse{Config: &container.Config{Image: "a:1"}}}},
		}
		if mod != nil {
			mod(&inv)
		}
		b, _ := json.Marshal(inv)
		return string(b)
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"good", good(nil), ""},
		{"not JSON", "{", "unexpected end of JSON input"},
		{"another format", good(func(i *Inventory) { i.FormatVersion = "2" }), `format_version "2", this dockward reads "1"`},
		{"no format", `{}`, `format_version "", this dockward reads "1"`},
		{"image without ID", good(func(i *Inventory) { i.Images[0].ID = "" }), "an image without an ID"},
		{"archive outside the directory", good(func(i *Inventory) { i.Images[0].File = "../../etc/shadow" }), `image a:1: archive "../../etc/shadow" is not a file inside the directory`},
		{"absolute archive", good(func(i *Inventory) { i.Images[0].File = "/etc/shadow" }), `image a:1: archive "/etc/shadow" is not a file inside the directory`},
		{"no archive", good(func(i *Inventory) { i.Images[0].File = "" }), `image a:1: archive "" is not a file inside the directory`},
		{"repeated container", good(func(i *Inventory) { i.Containers = append(i.Containers, i.Containers[0]) }), `container name "c" empty or repeated`},
		{"unnamed network", good(func(i *Inventory) { i.Networks[0].Name = "" }), `network name "" empty or repeated`},
		{"repeated volume", good(func(i *Inventory) { i.Volumes = append(i.Volumes, i.Volumes[0]) }), `volume name "v" empty or repeated`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseManifest([]byte(tt.in))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("parseManifest = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

// TestManifestRoundTrip: what Export writes, ReadManifest reads back
// unchanged, moby's own types (ports as map keys, addresses) included.
func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := &Inventory{
		FormatVersion: FormatVersion, DockerRootDir: "/var/lib/docker", APIVersion: "1.45",
		Networks:   []Network{{Name: "front", Inspect: network.Inspect{Network: network.Network{Name: "front", Driver: "bridge", Options: map[string]string{"a": "b"}}}}},
		Containers: []Container{{Name: "web", ID: webID, Inspect: webInspect(), Binds: []Bind{{Source: "/srv", Destination: "/srv", UID: 5}}}},
	}
	// Export without images needs no daemon.
	if err := Export(t.Context(), nil, in, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ManifestFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest: %v %v, want mode 0600", fi, err)
	}
	out, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(in)
	b, _ := json.Marshal(out)
	if string(a) != string(b) {
		t.Errorf("round trip changed the inventory:\n%s\n%s", a, b)
	}
	if _, err := ReadManifest(t.TempDir()); err == nil || !strings.Contains(err.Error(), ManifestFile) {
		t.Errorf("no manifest: %v", err)
	}
}

// FuzzParseManifest: the manifest is a file on disk, outside input; a
// parsed one never names an archive outside its directory.
func FuzzParseManifest(f *testing.F) {
	f.Add(`{"format_version":"1","images":[{"id":"sha256:a","file":"images/000-a.tar"}]}`)
	f.Add(`{"format_version":"1","containers":[{"name":"c","inspect":{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"8080"}]}}}}]}`)
	f.Add(`{"format_version":"1","networks":[{"name":"n","inspect":{"IPAM":{"Config":[{"Subnet":"10.0.0.0/24"}]}}}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		inv, err := parseManifest([]byte(in))
		if err != nil {
			return
		}
		for _, im := range inv.Images {
			if !filepath.IsLocal(im.File) {
				t.Errorf("archive %q outside the directory accepted", im.File)
			}
		}
	})
}

// TestExportRefusesWithoutRoom: nothing is saved when the images cannot
// fit, and the error says how much is needed.
func TestExportRefusesWithoutRoom(t *testing.T) {
	dir := t.TempDir()
	f := newFake(t) // its ImageSave fails: it must not be reached
	inv := &Inventory{FormatVersion: FormatVersion, Images: []Image{{ID: "sha256:huge", Tags: []string{"huge:1"}, Size: 1 << 60}}}
	err := Export(t.Context(), f, inv, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "the images need about 1099511627776 MB in "+dir) {
		t.Fatalf("export of a too large image: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		t.Error("a manifest was written")
	}
}

func TestExportClosesItsDirectory(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "new", "export")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := Export(t.Context(), nil, &Inventory{FormatVersion: FormatVersion}, dir, Options{}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{dir, filepath.Join(dir, "images")} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v %v, want 0700", p, fi.Mode(), err)
			}
		}
	}
}
