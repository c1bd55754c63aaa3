// Package migrate moves a Docker host's workloads across a data-root
// switch: enabling or disabling userns-remap, or changing the remap
// ranges, makes dockerd use another data root (/var/lib/docker or
// /var/lib/docker/<uidstart>.<gidstart>), and everything made in the old
// one is hidden from it. The docker_daemon module calls this package around
// the docker restart when the operator chose to migrate:
//
//	inv, err := migrate.Read(ctx, cli, opts)      // old daemon: what its root holds
//	blockers := inv.Blockers(shift)               // what cannot move, and why (plan shows it)
//	err = migrate.Export(ctx, cli, inv, dir, opts) // old daemon: image archives + manifest.json in dir
//	// ... daemon.json changed, docker restarted on the new root ...
//	res, err := migrate.Import(ctx, cli, dir, opts) // new daemon: load, create, copy, start
//
// cli is any Engine (a *client.Client of github.com/moby/moby/client).
// opts.Shift says how the two roots map IDs (From: the old root's map, the
// zero IDMap without userns-remap; To: the new one's, e.g.
// RemapRange(100000, 100000, 65536)); opts.HostRoot is where the daemon's
// files are seen from this process ("" on the host itself).
//
// What moves:
//
//   - images that are tagged or used by a container: saved with the Engine
//     API's image save, streamed into one archive per image, and loaded
//     into the new daemon, streamed;
//   - user-defined networks: created with the same name, driver, options,
//     IPAM (the same subnets and gateways), internal flag, IPv6 and labels;
//   - volumes (named and anonymous): created with the same name, driver
//     options and labels, their data copied from the old root's
//     volumes/NAME/_data with each file's owner shifted (CopyTree), so the
//     container's root still owns what it owned: uid u under From is uid u
//     under To (with To = RemapRange(100000, ...), 0 -> 100000, 1000 ->
//     101000). Modes, times, symlinks, hard links and user.*/trusted.*
//     extended attributes are kept; ACLs and file capabilities, which hold
//     IDs of one namespace, are not (the Result counts them);
//   - containers: created from their inspect answer (CreateOptions: name,
//     image, command, entrypoint, environment, labels, user, working
//     directory, restart policy, mounts, networks with aliases and static
//     addresses, published ports, limits and the rest of the host
//     configuration), those that ran started, in an order that puts a
//     container after those whose namespace or volumes it shares.
//
// What does not move is decided before anything is done (Blockers) and
// reported per object: changes in a container's writable layer, which
// recreating it would lose; --privileged and host-namespace containers,
// which a remapped daemon refuses unless they run with userns_mode =
// host; bind mounts whose source's owner the container would see
// differently; volumes of other drivers; swarm networks; and whatever
// needs one of those.
//
// Promises: the old root is only read, never changed or deleted, so
// switching back shows the old state. Import goes on past a failed object
// and its Result (also dir/result.json) says per object moved, present,
// skipped (with the reason) or failed (with the error). Import is
// idempotent: run again after a partial failure it recognises what is
// already in the new root and completes the rest; a volume whose copy was
// interrupted is copied again, a volume the new root had of its own is
// left alone. The export directory holds archives and configurations
// (environment variables may hold secrets): Export gives it mode 0700.
package migrate
