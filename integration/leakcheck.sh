#!/bin/bash
# leakcheck.sh: fail when a test left a sandbox machine, one of its mounts or
# processes, or a test network namespace behind. `make test` runs it last.
#
# It checks: systemd-nspawn processes of sandbox machines (named dw-*), PID 1
# of a machine whose nspawn is gone, mounts of the sandbox or the tree cache
# in this mount namespace, a debootstrap still running, directories of
# stopped machines (a test process killed with SIGKILL; the next sandbox boot
# removes them), and, through integration/netnstest/cmd/netnstest-check,
# named network namespaces and host links of the tier-1 tests.
# It only looks; it removes nothing. Run it when no other test is running:
# another run's live machine counts as left behind.
set -u

# A machine whose test process has just exited may still be powering off
# (SIGTERM from Pdeathsig takes about 2 s): what is still there after a
# grace period is left behind, not what is on its way out.
if [[ ${1:-} != --once ]]; then
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		if "$0" --once >/dev/null 2>&1; then
			"$0" --once
			exit
		fi
		sleep 2
	done
	exec "$0" --once
fi
here=$(cd "$(dirname "$0")" && pwd)
sandbox_dir=${TMPDIR:-/tmp}/dockward-sandbox
cache=/var/cache/dockward-testbed
leaks=0
leak() { echo "leakcheck: left behind: $*" >&2; leaks=$((leaks + 1)); }

declare -A running # machine name -> nspawn pid
nspawn_pids=" "
for p in /proc/[0-9]*; do
	pid=${p#/proc/}
	cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
	case $cmd in
	*systemd-nspawn*" -M dw-"*)
		name=${cmd#* -M }
		name=${name%% *}
		running[$name]=$pid
		nspawn_pids+="$pid "
		leak "sandbox machine $name: systemd-nspawn pid $pid"
		;;
	*debootstrap*"$cache"*) leak "tree build: debootstrap pid $pid" ;;
	esac
done

# A machine's PID 1 whose nspawn was killed: PID 1 of its own namespace,
# its parent not a systemd-nspawn, its mount table naming the sandbox dir.
for p in /proc/[0-9]*; do
	pid=${p#/proc/}
	[[ $pid != 1 ]] || continue
	[[ $(awk '/^NSpid:/ { print $NF }' "$p/status" 2>/dev/null) == 1 ]] || continue
	ppid=$(awk '/^PPid:/ { print $2 }' "$p/status" 2>/dev/null)
	[[ $nspawn_pids != *" $ppid "* ]] || continue
	if grep -qs "$sandbox_dir/dw-" "$p/mountinfo"; then
		leak "sandbox machine PID 1 without its nspawn: pid $pid ($(cat "$p/comm" 2>/dev/null))"
	fi
done

while read -r _ _ _ _ mnt _; do
	case $mnt in
	"$sandbox_dir"/* | "$cache"/*) leak "mount $mnt" ;;
	esac
done </proc/self/mountinfo

for d in "$sandbox_dir"/dw-*; do
	[[ -e $d ]] || continue
	name=${d##*/}
	[[ -z ${running[$name]:-} ]] || continue # reported above
	leak "directory $d of a stopped machine (removed by the next sandbox boot, or rm -rf it)"
done

# The machines' own cgroups (integration/sandbox/cgroup.go).
for cg in /sys/fs/cgroup/dockward-sandbox-* /sys/fs/cgroup/*/dockward-sandbox-*; do
	[[ -d $cg ]] && leak "cgroup $cg"
done

if [[ -d $here/netnstest/cmd/netnstest-check ]]; then
	(cd "$here/.." && go run ./integration/netnstest/cmd/netnstest-check) || leaks=$((leaks + 1))
fi

if ((leaks > 0)); then
	echo "leakcheck: FAIL ($leaks left behind)" >&2
	exit 1
fi
echo "leakcheck: nothing left behind"
