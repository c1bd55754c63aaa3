package daemonjson

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/modules/daemonjson/migrate"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// engineMigrator is the Migrator built in: package migrate, over the
// Engine API of the daemon on this host.
type engineMigrator struct{}

func init() { SetMigrator(engineMigrator{}) }

func (engineMigrator) options(log *logrus.Entry, sw *dataSwitch) (migrate.Options, error) {
	from, err := fromMap(sw)
	if err != nil {
		return migrate.Options{}, err
	}
	return migrate.Options{
		Shift: migrate.Shift{From: from, To: idMap(sw.To)},
		Logf:  func(f string, a ...any) { log.Infof(f, a...) },
	}, nil
}

func (e engineMigrator) Blockers(ctx context.Context, log *logrus.Entry, cli *client.Client, sw *dataSwitch) ([]string, error) {
	o, err := e.options(log, sw)
	if err != nil {
		return nil, err
	}
	inv, err := migrate.Read(ctx, cli, o)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range inv.Blockers(o.Shift) {
		out = append(out, b.Kind+" "+b.Name+": "+b.Reason)
	}
	return out, nil
}

func (e engineMigrator) Export(ctx context.Context, log *logrus.Entry, cli *client.Client, sw *dataSwitch, dir string) error {
	o, err := e.options(log, sw)
	if err != nil {
		return err
	}
	inv, err := migrate.Read(ctx, cli, o)
	if err != nil {
		return err
	}
	return migrate.Export(ctx, cli, inv, dir, o)
}

func (e engineMigrator) Import(ctx context.Context, log *logrus.Entry, cli *client.Client, sw *dataSwitch, dir string) ([]string, error) {
	o, err := e.options(log, sw)
	if err != nil {
		return nil, err
	}
	res, err := migrate.Import(ctx, cli, dir, o)
	var out []string
	if res != nil {
		for _, oc := range res.Outcomes {
			out = append(out, oc.String())
		}
	}
	return out, err
}

// idMap is how a root's containers see IDs: nothing remapped, or the remap
// user's ranges in order, container IDs counting on from one to the next
// (as dockerd builds it).
func idMap(r dataRoot) migrate.IDMap {
	if r.Remap == "" {
		return migrate.IDMap{}
	}
	conv := func(rs []agent.IDRange) []migrate.IDRange {
		rs = slices.Clone(rs)
		slices.SortFunc(rs, func(a, b agent.IDRange) int { return cmp.Compare(a.Start, b.Start) })
		var out []migrate.IDRange
		var c uint64
		for _, x := range rs {
			out = append(out, migrate.IDRange{Container: uint32(c), Host: uint32(x.Start), Size: uint32(x.Count)})
			c += x.Count
		}
		return out
	}
	return migrate.IDMap{UID: conv(r.UIDs), GID: conv(r.GIDs)}
}

// fromMap is the running root's map: from the files when they agree with
// the root dockerd reports, else read off its name (DATA_ROOT/UID.GID,
// one range of 65536, what dockerd allocates).
func fromMap(sw *dataSwitch) (migrate.IDMap, error) {
	if sw.FromRoot != nil {
		return idMap(*sw.FromRoot), nil
	}
	base := filepath.Base(sw.From)
	u, g, ok := strings.Cut(base, ".")
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return migrate.IDMap{}, nil // not a remapped root's name: no remapping
	}
	if uid == 0 && gid == 0 {
		return migrate.IDMap{}, fmt.Errorf("data root %s: cannot tell its ID map", sw.From)
	}
	return migrate.RemapRange(uint32(uid), uint32(gid), 65536), nil
}
