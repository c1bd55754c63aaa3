package service

import (
	"strings"

	"github.com/dockward/dockward/agent"
)

// daemonJSONModule is the docker_daemon module's ID. Its changes carry the
// daemon.json key as Target, which is what decides between reload and
// restart. (Named here rather than imported: the daemonjson package may
// use this package's D-Bus adapter, and Go forbids the cycle.)
const daemonJSONModule = "docker_daemon"

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

// reloadable reports whether one change, made by module, takes effect with a
// reload of the unit. Only docker_daemon's key changes can; everything else
// (subordinate_ids, the daemon.json file as a whole, other modules) needs a
// restart.
func reloadable(module string, c agent.Change) bool {
	if module != daemonJSONModule {
		return false
	}
	key := c.Target
	// A nested key ("log-opts.max-size") belongs to its top-level key.
	if i := strings.IndexByte(key, '.'); i >= 0 {
		key = key[:i]
	}
	return reloadableKeys[key]
}

// onlyReloadable reports whether every owed change can be applied by a
// reload. An empty set is not: there is nothing to reload for.
func onlyReloadable(owed map[string][]agent.Change) bool {
	n := 0
	for module, cs := range owed {
		for _, c := range cs {
			if !reloadable(module, c) {
				return false
			}
			n++
		}
	}
	return n > 0
}
