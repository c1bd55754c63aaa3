package daemonjson

import "github.com/dockward/dockward/agent"

// WatchedFiles implements agent.FileWatcher: the run loop converges this
// module when daemon.json is written, replaced or removed.
func (m *Module) WatchedFiles(env *agent.Env) []string {
	return []string{env.Path(m.cfg.Path)}
}

var _ agent.FileWatcher = (*Module)(nil)
