package daemonjson

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
)

// on_data_root_switch = "migrate": the module's part is the order. Before
// the first write that moves the root (Gate, for docker_daemon or for the
// module whose ranges move it), the workloads are exported from the running
// dockerd; after docker.service restarted and was verified (Follow), they
// are imported into the new root. The old root is never touched, so a
// failure midway leaves docker running and switching back shows the old
// state. The moving itself is a Migrator's.

// Migrator moves workloads from one data root to another over the Engine
// API. SetMigrator installs the implementation
// (modules/daemonjson/migrate); without one, migrate fails before anything
// is written.
type Migrator interface {
	// Blockers lists, before anything is done, what of the running daemon's
	// root cannot move across sw, as "kind name: reason" (e.g. "container
	// web: --privileged needs userns_mode = host").
	Blockers(ctx context.Context, log *logrus.Entry, cli *client.Client, sw *dataSwitch) ([]string, error)
	// Export saves what Import needs into dir, from the running daemon.
	Export(ctx context.Context, log *logrus.Entry, cli *client.Client, sw *dataSwitch, dir string) error
	// Import recreates into the running daemon (now on the new root) what
	// Export saved in dir. outcomes says per object what happened
	// ("container web: moved"), also when err says what failed.
	Import(ctx context.Context, log *logrus.Entry, cli *client.Client, sw *dataSwitch, dir string) (outcomes []string, err error)
}

var migrator Migrator

// SetMigrator installs the Migrator migrate uses.
func SetMigrator(m Migrator) { migrator = m }

// migration is the switch of one run, once it exported (dir) or stopped
// containers before the restart (stopped): what Follow finishes or undoes.
type migration struct {
	facts     *agent.Facts
	sw        *dataSwitch
	dir       string
	stopped   []string
	stopsDone bool
}

// pending returns this run's record of an approved switch, making one.
func (m *Module) pending(env *agent.Env, sw *dataSwitch) *migration {
	if m.mig == nil || m.mig.facts != env.Facts || env.Facts == nil {
		m.mig = &migration{facts: env.Facts, sw: sw}
	}
	return m.mig
}

var _ agent.RestartPreparer = (*Module)(nil)

// PrepareRestart implements agent.RestartPreparer: right before docker is
// restarted onto the new root, the containers live-restore would keep
// running through the restart are stopped.
func (m *Module) PrepareRestart(ctx context.Context, env *agent.Env, unit string) {
	mig := m.mig
	if mig == nil || mig.facts != env.Facts || !mig.sw.LiveRestore || mig.stopsDone {
		return
	}
	mig.stopsDone = true
	m.stopRunning(ctx, env, mig.sw)
}

// stopRunning stops the containers running on the old root right before
// the restart, when the running dockerd has live-restore:
// it would leave them running through the restart, outside the new
// dockerd's view (holding their ports, writing to volumes being copied).
// Without live-restore dockerd stops them itself as it shuts down. A
// container that does not stop is logged: the switch goes on.
func (m *Module) stopRunning(ctx context.Context, env *agent.Env, sw *dataSwitch) {
	log := env.Logger()
	cli, err := m.engine()
	if err != nil {
		log.WithError(err).Error("could not stop the containers of the old data root before the restart")
		return
	}
	defer cli.Close() //nolint:errcheck
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		log.WithError(err).Error("could not list the containers of the old data root to stop them before the restart")
		return
	}
	mig := m.pending(env, sw)
	// All at once: each may take its stop timeout (10 s by default, all of
	// it for a process that ignores SIGTERM, as a shell as PID 1 does).
	stopped := make([]bool, len(list.Items))
	var wg sync.WaitGroup
	for i, c := range list.Items {
		wg.Go(func() {
			name := c.ID[:min(12, len(c.ID))]
			if len(c.Names) > 0 {
				name = strings.TrimPrefix(c.Names[0], "/")
			}
			if _, err := cli.ContainerStop(ctx, c.ID, client.ContainerStopOptions{}); err != nil {
				log.WithError(err).Errorf("container %s could not be stopped before the restart; with live-restore it runs on, unseen", name)
				return
			}
			log.Infof("stopped container %s of %s before the restart (live-restore would keep it running unseen)", name, sw.From)
			stopped[i] = true
		})
	}
	wg.Wait()
	for i, c := range list.Items {
		if stopped[i] {
			mig.stopped = append(mig.stopped, c.ID)
		}
	}
}

// startAgain starts what stopRunning stopped, after a restart that left
// docker on the old root.
func (m *Module) startAgain(ctx context.Context, cli *client.Client, mig *migration) []agent.Change {
	var cs []agent.Change
	for _, id := range mig.stopped {
		c := agent.Change{Action: agent.Update, Target: "container " + id[:min(12, len(id))], New: "running", Detail: "started again on " + mig.sw.From, Metadata: true}
		if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			c.New, c.Detail = "stopped", "could not start it again: "+err.Error()
		}
		cs = append(cs, c)
	}
	return cs
}

func (m *Module) blockers(ctx context.Context, env *agent.Env, cli *client.Client, sw *dataSwitch) ([]string, error) {
	if migrator == nil || sw.Hidden.Empty() {
		return nil, nil
	}
	bs, err := migrator.Blockers(ctx, env.Logger(), cli, sw)
	if err != nil {
		return nil, fmt.Errorf("work out what cannot move from %s to %s: %w", sw.From, sw.To.Path, err)
	}
	return bs, nil
}

// exportOnce exports the workloads before the first write of the switch in
// this run. An export that fails fails the write: nothing is written and
// docker keeps running on its root.
func (m *Module) exportOnce(ctx context.Context, env *agent.Env, sw *dataSwitch, id string) error {
	if m.mig != nil && m.mig.facts == env.Facts && env.Facts != nil && m.mig.dir != "" {
		return nil
	}
	if sw.Hidden.Empty() {
		return nil
	}
	if migrator == nil {
		return fmt.Errorf("not written: on_data_root_switch = %q, but this dockward has no migrator built in; nothing was written and docker keeps running on %s", SwitchMigrate, sw.From)
	}
	if sw.Stopped {
		return fmt.Errorf("not written: on_data_root_switch = %q needs docker running to export what %s holds; start docker and run again (nothing was written)", SwitchMigrate, sw.From)
	}
	if !sw.To.Known {
		return fmt.Errorf("not written: cannot migrate to %s before %s has subordinate ID ranges (declare a subordinate_ids block for it)", sw.To.Path, sw.To.User)
	}
	dir := filepath.Join(stateDir(env.StateDir), "migrate", time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("not written: %w", err)
	}
	cli, err := m.engine()
	if err != nil {
		return fmt.Errorf("not written: docker engine API client: %w", err)
	}
	defer cli.Close() //nolint:errcheck
	env.Logger().WithField("dir", dir).Infof("exporting %s from %s before the switch", sw.Hidden.Summary(), sw.From)
	if err := migrator.Export(ctx, env.Logger(), cli, sw, dir); err != nil {
		return fmt.Errorf("not written: exporting the workloads of %s failed, so nothing was written and docker keeps running on it: %w", sw.From, err)
	}
	m.pending(env, sw).dir = dir
	return nil
}

var _ agent.Follower = (*Module)(nil)

// Follow implements agent.Follower: after docker.service restarted, a
// migration exported in this run is imported into the new root; after a
// restart that failed or rolled back, the containers stopped for it are
// started again.
func (m *Module) Follow(ctx context.Context, env *agent.Env, unit string, restarted bool) ([]agent.Change, error) {
	mig := m.mig
	if mig == nil || mig.facts != env.Facts {
		return nil, nil
	}
	m.mig = nil
	sw := mig.sw
	if !restarted && len(mig.stopped) == 0 && mig.dir == "" {
		return nil, nil
	}
	if restarted && mig.dir == "" && len(mig.stopped) == 0 {
		return nil, nil // left behind, as chosen
	}
	cli, err := m.engine()
	if err != nil {
		return nil, fmt.Errorf("after the restart: docker engine API client: %w", err)
	}
	defer cli.Close() //nolint:errcheck
	why := unit + " did not restart (it failed or was rolled back)"
	if restarted {
		// A restart that kept docker on the old root (the switch's other
		// half was not written) needs what was stopped for it back.
		info, err := cli.Info(ctx, client.InfoOptions{})
		if err == nil && filepath.Clean(info.Info.DockerRootDir) == sw.From {
			restarted, why = false, "after the restart docker still uses "+sw.From
		} else if mig.dir == "" {
			return nil, nil // left behind, as chosen
		}
	}
	if !restarted {
		cs := m.startAgain(ctx, cli, mig)
		if mig.dir == "" {
			return cs, nil
		}
		return cs, fmt.Errorf("migration not done: %s, not %s; nothing was imported, %s is untouched and the export stays in %s", why, sw.To.Path, sw.From, mig.dir)
	}
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("migration not done: ask docker which data root it uses after the restart: %w; %s is untouched and the export stays in %s", err, sw.From, mig.dir)
	}
	if got := filepath.Clean(info.Info.DockerRootDir); got != sw.To.Path {
		return nil, fmt.Errorf("migration not done: after the restart docker uses %s, not %s; nothing was imported, %s is untouched and the export stays in %s", got, sw.To.Path, sw.From, mig.dir)
	}
	env.Logger().Infof("importing into %s what was exported from %s", sw.To.Path, sw.From)
	outcomes, err := migrator.Import(ctx, env.Logger(), cli, sw, mig.dir)
	var cs []agent.Change
	for _, o := range outcomes {
		cs = append(cs, agent.Change{Action: agent.Create, Target: o, Detail: "migrate from " + sw.From, Metadata: true})
	}
	if err != nil {
		return cs, errors.Join(fmt.Errorf("migration incomplete (what happened to each object is listed above; %s is untouched, the export and its result.json stay in %s)", sw.From, mig.dir), err)
	}
	// Done: the image archives are copies of what both roots now hold;
	// the manifest and result.json stay as the record of the move.
	if err := os.RemoveAll(filepath.Join(mig.dir, "images")); err != nil {
		env.Logger().WithError(err).Warn("could not remove the exported image archives")
	}
	env.Logger().WithField("record", mig.dir).Info("migration done")
	return cs, nil
}
