package migrate

import (
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// FormatVersion is the version of the inventory's JSON form (the manifest
// Export writes). Fields are only ever added.
const FormatVersion = "1"

// Inventory is what one data root holds, as its daemon reported it.
type Inventory struct {
	FormatVersion string `json:"format_version"`
	// DockerRootDir is the daemon's data root, e.g. /var/lib/docker or,
	// under userns-remap, /var/lib/docker/100000.100000.
	DockerRootDir string `json:"docker_root_dir"`
	ServerVersion string `json:"server_version"`
	// APIVersion is the Engine API version the daemon spoke; some inspect
	// fields (EnableIPv4) exist only from some version on.
	APIVersion string `json:"api_version"`
	// Remapped is true when the daemon runs with userns-remap.
	Remapped   bool        `json:"remapped"`
	Images     []Image     `json:"images"`
	Networks   []Network   `json:"networks"`
	Volumes    []Volume    `json:"volumes"`
	Containers []Container `json:"containers"`
}

// Empty reports whether the root holds nothing an operator made: no
// container, image, user-defined network or volume. Switching away from an
// empty root hides nothing.
func (inv *Inventory) Empty() bool {
	return len(inv.Images) == 0 && len(inv.Networks) == 0 && len(inv.Volumes) == 0 && len(inv.Containers) == 0
}

// Image is one image of the root.
type Image struct {
	ID string `json:"id"`
	// Tags are its repository tags; an image without any is saved and
	// loaded by ID.
	Tags []string `json:"tags,omitempty"`
	Size int64    `json:"size"`
	// File is the image's archive, relative to the export directory (set
	// by Export).
	File string `json:"file,omitempty"`
}

// Ref is the name the image is saved by and recognised with: its first
// tag, or its ID.
func (im Image) Ref() string {
	if len(im.Tags) > 0 {
		return im.Tags[0]
	}
	return im.ID
}

// Network is one user-defined network (bridge, host and none are the
// daemon's own and exist in every root).
type Network struct {
	Name    string          `json:"name"`
	Inspect network.Inspect `json:"inspect"`
}

// Volume is one volume, named or anonymous.
type Volume struct {
	Name    string            `json:"name"`
	Driver  string            `json:"driver"`
	Labels  map[string]string `json:"labels,omitempty"`
	Options map[string]string `json:"options,omitempty"`
	// Mountpoint is where the daemon keeps its data (for the local driver
	// without options, DockerRootDir/volumes/NAME/_data).
	Mountpoint string `json:"mountpoint"`
}

// Container is one container with the configuration it was created with.
type Container struct {
	Name    string `json:"name"` // without Docker's leading slash
	ID      string `json:"id"`
	Image   string `json:"image"`    // as the operator named it (Config.Image)
	ImageID string `json:"image_id"` // the image it runs
	Running bool   `json:"running"`
	// Changes are the first MaxChanges entries of its writable layer's
	// changes ("A /path", "C /path", "D /path"); ChangeCount counts all.
	Changes     []string `json:"changes,omitempty"`
	ChangeCount int      `json:"change_count,omitempty"`
	// ChangesError says why the changes could not be read.
	ChangesError string `json:"changes_error,omitempty"`
	// Binds are its bind mounts with the owner of their source on the host.
	Binds   []Bind                    `json:"binds,omitempty"`
	Inspect container.InspectResponse `json:"inspect"`
}

// MaxChanges caps the writable-layer changes kept per container.
const MaxChanges = 10

// Bind is a bind mount and what its source is on the host.
type Bind struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	RW          bool   `json:"rw"`
	UID         uint32 `json:"uid"`
	GID         uint32 `json:"gid"`
	Mode        uint32 `json:"mode"` // permission bits of the source
	// StatError says why the source could not be looked at (it does not
	// exist, most often); UID, GID and Mode are then unset.
	StatError string `json:"stat_error,omitempty"`
}
