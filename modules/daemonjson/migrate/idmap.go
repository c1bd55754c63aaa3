package migrate

import (
	"fmt"
	"slices"
)

// IDRange maps Size consecutive IDs starting at Container (as a container's
// processes see them) to the IDs starting at Host (as the host's kernel and
// file systems see them): one line of /proc/PID/uid_map, or one
// /etc/subuid range with Container counting on from the previous one.
type IDRange struct {
	Container uint32 `json:"container"`
	Host      uint32 `json:"host"`
	Size      uint32 `json:"size"`
}

// IDMap is how a data root's containers see user and group IDs. The zero
// value is no remapping: a daemon without userns-remap, where the
// container's root is the host's root. Under userns-remap with
// dockremap:100000:65536 it is {UID: [{0, 100000, 65536}], GID: the same}.
type IDMap struct {
	UID []IDRange `json:"uid,omitempty"`
	GID []IDRange `json:"gid,omitempty"`
}

// Remapped reports whether containers run in a user namespace of their own.
func (m IDMap) Remapped() bool { return len(m.UID) > 0 || len(m.GID) > 0 }

// RemapRange is the map userns-remap makes from one subordinate range per
// kind (the common case: start 100000, count 65536).
func RemapRange(uidStart, gidStart, count uint32) IDMap {
	return IDMap{
		UID: []IDRange{{Container: 0, Host: uidStart, Size: count}},
		GID: []IDRange{{Container: 0, Host: gidStart, Size: count}},
	}
}

// Validate rejects empty and overlapping ranges and ranges that run past
// the 32-bit ID space, which would make the shift ambiguous.
func (m IDMap) Validate() error {
	for _, k := range []struct {
		name string
		rs   []IDRange
	}{{"uid", m.UID}, {"gid", m.GID}} {
		for i, r := range k.rs {
			if r.Size == 0 {
				return fmt.Errorf("%s range %d is empty", k.name, i)
			}
			if uint64(r.Container)+uint64(r.Size) > 1<<32 || uint64(r.Host)+uint64(r.Size) > 1<<32 {
				return fmt.Errorf("%s range %d (%d -> %d, %d IDs) runs past 2^32", k.name, i, r.Container, r.Host, r.Size)
			}
			for j, o := range k.rs[:i] {
				if overlaps(r.Container, r.Size, o.Container, o.Size) {
					return fmt.Errorf("%s ranges %d and %d overlap on the container side", k.name, j, i)
				}
				if overlaps(r.Host, r.Size, o.Host, o.Size) {
					return fmt.Errorf("%s ranges %d and %d overlap on the host side", k.name, j, i)
				}
			}
		}
	}
	return nil
}

func overlaps(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

// ToHost maps an ID as the container sees it to the host's; ok is false
// when the map has no room for it (the kernel shows such IDs as the
// overflow ID, nobody).
func toHost(rs []IDRange, id uint32) (uint32, bool) {
	if len(rs) == 0 {
		return id, true
	}
	for _, r := range rs {
		if id >= r.Container && uint64(id) < uint64(r.Container)+uint64(r.Size) {
			return r.Host + (id - r.Container), true
		}
	}
	return 0, false
}

// toContainer maps a host ID to the container's view of it.
func toContainer(rs []IDRange, id uint32) (uint32, bool) {
	if len(rs) == 0 {
		return id, true
	}
	for _, r := range rs {
		if id >= r.Host && uint64(id) < uint64(r.Host)+uint64(r.Size) {
			return r.Container + (id - r.Host), true
		}
	}
	return 0, false
}

// UIDToHost and the others below map one ID between the container's and
// the host's view; ok is false when the map has no room for it.
func (m IDMap) UIDToHost(id uint32) (uint32, bool)      { return toHost(m.UID, id) }
func (m IDMap) GIDToHost(id uint32) (uint32, bool)      { return toHost(m.GID, id) }
func (m IDMap) UIDToContainer(id uint32) (uint32, bool) { return toContainer(m.UID, id) }
func (m IDMap) GIDToContainer(id uint32) (uint32, bool) { return toContainer(m.GID, id) }

// overflowID is what the kernel shows for an ID a user namespace does not
// map (/proc/sys/kernel/overflowuid): nobody.
const overflowID = 65534

// Shift moves file ownership from one data root's view to another's: a
// file the old root's containers saw as owned by u (host ID from.ToHost(u))
// is owned by to.ToHost(u) afterwards, so each container's user still owns
// what it owned. With from unremapped and to = RemapRange(100000, ...),
// uid 0 becomes 100000 and uid 1000 becomes 101000; the other way round
// undoes it; between two ranges it moves from one to the other.
type Shift struct{ From, To IDMap }

// Owner returns the new owner of a file owned by uid:gid on the host under
// From. mapped is false when either ID has no place in the container's
// view on one side; that ID then becomes the container's nobody (as the
// kernel would show it), or stays as it is when To has no nobody either.
func (s Shift) Owner(uid, gid uint32) (newUID, newGID uint32, mapped bool) {
	u, uok := shiftID(s.From.UID, s.To.UID, uid)
	g, gok := shiftID(s.From.GID, s.To.GID, gid)
	return u, g, uok && gok
}

func shiftID(from, to []IDRange, id uint32) (uint32, bool) {
	c, ok := toContainer(from, id)
	if ok {
		if h, ok := toHost(to, c); ok {
			return h, true
		}
	}
	if h, ok := toHost(to, overflowID); ok {
		return h, false
	}
	return id, false
}

// Identity reports whether the shift changes nothing (both sides map the
// same way), so a copy can keep ownership as it is.
func (s Shift) Identity() bool {
	return slices.Equal(norm(s.From.UID), norm(s.To.UID)) && slices.Equal(norm(s.From.GID), norm(s.To.GID))
}

func norm(rs []IDRange) []IDRange {
	if len(rs) == 0 {
		return nil
	}
	return rs
}
