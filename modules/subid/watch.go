package subid

import "github.com/dockward/dockward/agent"

// WatchedFiles implements agent.FileWatcher: the range files, and passwd
// because a removed remap user is drift too.
func (m *Module) WatchedFiles(env *agent.Env) []string {
	return []string{env.Path("/etc/subuid"), env.Path("/etc/subgid"), env.Path("/etc/passwd")}
}

var _ agent.FileWatcher = (*Module)(nil)
