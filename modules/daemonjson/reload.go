package daemonjson

import (
	"strings"

	"github.com/dockward/dockward/agent"
)

// reloadableKeys are the daemon.json keys dockerd applies on SIGHUP (the
// unit's ExecReload) without a restart.
//
// Source: the dockerd reference, "Configuration reload behavior"
// (https://docs.docker.com/reference/cli/dockerd/#configuration-reload-behavior),
// checked against moby's daemon/reload.go and cmd/dockerd's reloadConfig,
// which reload exactly these: debug, labels, live-restore,
// max-concurrent-downloads, max-concurrent-uploads, max-download-attempts,
// default-runtime, runtimes, authorization-plugins,
// allow-nondistributable-artifacts, insecure-registries, registry-mirrors,
// shutdown-timeout and features.
//
// Left out on purpose, so that they restart:
//   - "features": dockerd stores the new map on SIGHUP, but the features
//     that matter (containerd-snapshotter, buildkit) are read once at start;
//     a reload would report success and change nothing.
//   - "builder" (build cache GC): not in the documented list and not in
//     daemon/reload.go; the builder is configured at start.
//   - keys that moby's reloadPlatform happens to copy (default-shm-size,
//     default-ipc-mode, default-cgroupns-mode) but the documentation does
//     not promise.
//
// A key missing here only costs a restart where a reload would have done;
// a key wrongly listed here would leave dockerd running the old setting
// while dockward reports success, so the list errs on the side of restart.
var reloadableKeys = map[string]bool{
	"debug":                            true,
	"labels":                           true,
	"live-restore":                     true,
	"max-concurrent-downloads":         true,
	"max-concurrent-uploads":           true,
	"max-download-attempts":            true,
	"default-runtime":                  true,
	"runtimes":                         true,
	"authorization-plugins":            true,
	"allow-nondistributable-artifacts": true,
	"insecure-registries":              true,
	"registry-mirrors":                 true,
	"shutdown-timeout":                 true,
}

// reloadable reports whether a change of one daemon.json key takes effect
// with a reload of docker.service. A nested key ("log-opts.max-size")
// belongs to its top-level key.
func reloadable(c agent.Change) bool {
	key := c.Target
	if i := strings.IndexByte(key, '.'); i >= 0 {
		key = key[:i]
	}
	return reloadableKeys[key]
}

// markReloads sets Reload on the key changes dockerd takes in on SIGHUP, so
// that the engine owes docker.service a reload, not a restart, when only
// those changed. Everything else (any other key, the file's mode) restarts.
func markReloads(changes []agent.Change) []agent.Change {
	for i := range changes {
		changes[i].Reload = reloadable(changes[i])
	}
	return changes
}
