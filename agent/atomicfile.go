package agent

import (
	"os"

	"github.com/dockward/dockward/agent/managedfile"
)

// WriteFileAtomic replaces path on the live system with data, atomically,
// with mode perm (and owner root:root when running as root) whatever the
// umask: managedfile.Root.WriteAtomic. Modules write through their Root
// (managedfile.Open(env.Root)) instead, so that --root contains them.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	r, _ := managedfile.Open("")
	return r.WriteAtomic(path, data, managedfile.RootOwned(perm))
}

// SyncDir fsyncs a directory so that a rename inside it is durable.
func SyncDir(dir string) error {
	r, _ := managedfile.Open("")
	return r.SyncDir(dir)
}
