package daemonjson

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
)

// Where dockerd keeps its data, and how userns-remap moves it: with
// userns-remap dockerd uses DATA_ROOT/UID.GID, UID and GID being the host
// IDs container root maps to (the start of the remap user's lowest range
// in /etc/subuid, of the remap group's in /etc/subgid). So enabling or
// disabling userns-remap, changing the remap user, or changing that user's
// ranges each move dockerd to another directory, and everything made in the
// old one disappears from view (it stays on disk).

// defaultDataRoot is dockerd's data-root when daemon.json sets none.
const defaultDataRoot = "/var/lib/docker"

// remapDefault is what userns-remap = "default" means: dockerd creates and
// uses the user and group dockremap.
const remapDefault = "dockremap"

// dataRoot is the directory dockerd uses for a daemon.json, and why.
type dataRoot struct {
	Path string
	// Remap is the userns-remap value ("" = off).
	Remap string
	// User and Group are the remap user and group names, when remapped.
	User, Group string
	// Known is false when the remap user has no ranges yet (dockerd's
	// first start with "default" allocates them): Path then ends in
	// "<uid>.<gid>".
	Known bool
	// By is the module whose planned ranges decided Path, when one
	// published them and its plan changes them (subordinate_ids.USER).
	By string
	// UIDs and GIDs are the remap user's and group's ranges (Known only).
	UIDs, GIDs []agent.IDRange
}

func (r dataRoot) String() string { return r.Path }

// cause says in words what makes dockerd use r.
func (r dataRoot) cause() string {
	if r.Remap == "" {
		return "no userns-remap"
	}
	s := fmt.Sprintf("userns-remap %q", r.Remap)
	if r.Known {
		uid, gid, _ := strings.Cut(filepath.Base(r.Path), ".")
		s += fmt.Sprintf(" maps container root to host %s:%s", uid, gid)
	} else {
		s += fmt.Sprintf(", and %s has no subordinate ranges yet", r.User)
	}
	return s
}

// idFiles reads the ranges dockerd would read; facts (what
// subordinate_ids plans in this run) take precedence over the files.
type idFiles struct {
	env    *agent.Env
	subuid []byte
	subgid []byte
	passwd []byte
	group  []byte
}

// readIDFiles reads the ID files under dir ("" = the live system) through
// the managed-file layer: regular files only, capped, so a FIFO or device
// there cannot hang or exhaust the run. A missing file reads as empty.
func readIDFiles(env *agent.Env, dir string) (*idFiles, error) {
	root, err := managedfile.Open(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f := &idFiles{env: env}
	for _, x := range []struct {
		path string
		dst  *[]byte
	}{{"/etc/subuid", &f.subuid}, {"/etc/subgid", &f.subgid}, {"/etc/passwd", &f.passwd}, {"/etc/group", &f.group}} {
		in, err := root.ReadInput(x.path, fileLimit)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", root.Path(x.path), err)
		}
		*x.dst = in.Data
	}
	return f, nil
}

// rootOf returns the data root dockerd uses with doc. With planned true
// the remap user's ranges are the ones a module published for this run
// (the state after apply); with false, the files as they are now.
// flagRoot is the --data-root the unit passes dockerd ("" = none): it
// stands for daemon.json's data-root, which dockerd then refuses to have.
func rootOf(doc *Document, ids *idFiles, planned bool, flagRoot ...string) (dataRoot, error) {
	base := defaultDataRoot
	if len(flagRoot) > 0 && flagRoot[0] != "" {
		base = filepath.Clean(flagRoot[0])
	}
	if v, ok := doc.Lookup("data-root"); ok {
		var s string
		if err := json.Unmarshal(v, &s); err != nil || !filepath.IsAbs(s) {
			return dataRoot{}, fmt.Errorf("data-root %s is not an absolute path", Compact(v))
		}
		base = filepath.Clean(s)
	}
	r := dataRoot{Path: base, Known: true}
	v, ok := doc.Lookup("userns-remap")
	if !ok {
		return r, nil
	}
	if err := json.Unmarshal(v, &r.Remap); err != nil {
		return dataRoot{}, fmt.Errorf("userns-remap %s is not a string", Compact(v))
	}
	if r.Remap == "" {
		return r, nil
	}
	r.User, r.Group = remapNames(r.Remap, ids)
	var uids, gids []agent.IDRange
	if ids.env.Facts != nil && planned {
		if s, ok := ids.env.Facts.SubordinateIDs(r.User); ok {
			uids = s.UID
			if r.Group == r.User {
				gids = s.GID
			}
			if s.Changed {
				r.By = s.Module
			}
		}
	}
	if uids == nil {
		uids = rangesOf(ids.subuid, r.User, uidOf(ids.passwd, r.User))
	}
	if gids == nil {
		gids = rangesOf(ids.subgid, r.Group, uidOf(ids.group, r.Group))
	}
	if len(uids) == 0 || len(gids) == 0 {
		r.Known = false
		r.Path = filepath.Join(base, "<uid>.<gid>")
		return r, nil
	}
	r.UIDs, r.GIDs = uids, gids
	r.Path = filepath.Join(base, fmt.Sprintf("%d.%d", lowest(uids), lowest(gids)))
	return r, nil
}

// remapNames turns a userns-remap value into the user and group dockerd
// looks up: "default" is dockremap:dockremap; "user" is user:user;
// "user:group" as given; numeric IDs are looked up in passwd and group.
func remapNames(v string, ids *idFiles) (user, group string) {
	if v == "default" {
		return remapDefault, remapDefault
	}
	user, group, ok := strings.Cut(v, ":")
	if _, err := strconv.ParseUint(user, 10, 32); err == nil {
		if n := nameOf(ids.passwd, user); n != "" {
			user = n
		}
	}
	if !ok {
		group = user
	}
	if _, err := strconv.ParseUint(group, 10, 32); err == nil {
		if n := nameOf(ids.group, group); n != "" {
			group = n
		}
	}
	return user, group
}

// rangesOf returns the ranges of name (or of its numeric ID) in a subuid-
// or subgid-format file. Lines dockerd would skip are skipped.
func rangesOf(data []byte, name, id string) []agent.IDRange {
	var out []agent.IDRange
	for line := range bytes.Lines(data) {
		f := strings.Split(strings.TrimSpace(string(line)), ":")
		if len(f) != 3 || strings.HasPrefix(f[0], "#") || (f[0] != name && (id == "" || f[0] != id)) {
			continue
		}
		s, err1 := strconv.ParseUint(f[1], 10, 32)
		c, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, agent.IDRange{Start: s, Count: c})
	}
	return out
}

// lowest is the start of the lowest range: dockerd sorts a user's ranges,
// and container ID 0 maps to the first.
func lowest(rs []agent.IDRange) uint64 {
	return slices.MinFunc(rs, func(a, b agent.IDRange) int { return cmp.Compare(a.Start, b.Start) }).Start
}

// uidOf finds name's numeric ID in a passwd- or group-format file.
func uidOf(data []byte, name string) string {
	for line := range bytes.Lines(data) {
		f := strings.SplitN(strings.TrimRight(string(line), "\n"), ":", 4)
		if len(f) >= 3 && f[0] == name {
			return f[2]
		}
	}
	return ""
}

// nameOf finds the name of numeric ID id in a passwd- or group-format file.
func nameOf(data []byte, id string) string {
	for line := range bytes.Lines(data) {
		f := strings.SplitN(strings.TrimRight(string(line), "\n"), ":", 4)
		if len(f) >= 3 && f[2] == id {
			return f[0]
		}
	}
	return ""
}
