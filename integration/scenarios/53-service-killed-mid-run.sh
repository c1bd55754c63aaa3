# 53-service-killed-mid-run: dockward is killed (SIGKILL) during an apply
# that changes daemon.json, once before it writes the file and once after,
# before docker's restart is verified. The restart owed survives in the
# journal; the next run restarts docker once, verifies it and clears it.

owed=/var/lib/dockward/restart-owed.json

# kill_when COND: start `dockward apply`, SIGKILL it as soon as COND (a bash
# test, evaluated without forking, so within microseconds) holds.
kill_when() {
	"$DOCKWARD" apply >/tmp/dw-killed.log 2>&1 &
	local pid=$! end=$((SECONDS + 60))
	while ! eval "$1" && ((SECONDS < end)); do :; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# daemon_json_says V: the file holds "max-size": "V" (read with a builtin).
daemon_json_says() {
	local s
	read -r -d '' s </etc/docker/daemon.json
	[[ $s =~ \"max-size\":\ *\"$1\" ]]
}

# recovers MARK INV: the next run settles what the killed one owed. MARK
# and INV are docker's start trace position and InvocationID from before the
# killed run. Across the killed run and the next one docker.service starts
# exactly once: by the next run, or, when the kill came after the killed
# run's restart job was already under way, by that job (the next run then
# finds docker started after the owed changes and only clears the debt).
# The killed run's job may still be running while the next run plans: the
# next run waits for it (a job queued on the unit is let finish).
recovers() {
	local mark=$1 inv_before=$2
	expect_exit 2 dw plan
	expect_match "$OUT" "restart docker\.service|restart owed" "plan shows the restart still owed (or owed and already done)"
	expect_exit 2 dw apply
	expect_ne "$(invocation_id)" "$inv_before" "docker.service runs a new invocation"
	expect_eq "$(docker_starts_since "$mark")" 1 "docker.service started exactly once across the killed run and the next"
	check "daemon.json has max-size 10m" grep -q '"max-size": *"10m"' /etc/docker/daemon.json
	check "docker.service is active" systemctl is-active --quiet docker.service
	check "the restart owed is cleared" test ! -e "$owed"
	expect_exit 0 dw plan
}

converge
need "docker.service is active" systemctl is-active --quiet docker.service
need "no restart owed to begin with" test ! -e "$owed"

# 1. Killed once the restart owed is on disk: the engine records it before
#    docker_daemon writes (and `dockerd --validate` alone takes far longer
#    than the loop needs to notice).
set_json_string /etc/docker/daemon.json max-size 99m
inv0=$(invocation_id)
mark=$(docker_starts_mark)
# shellcheck disable=SC2016 # evaluated later by kill_when
kill_when '[[ -e $owed ]]'
check "the restart owed survived the kill" test -e "$owed"
expect_eq "$(invocation_id)" "$inv0" "the killed run did not restart docker"
expect_eq "$(docker_starts_since "$mark")" 0 "the killed run started nothing"
recovers "$mark" "$inv0"

# 2. Killed right after daemon.json was written, before the restart ends.
set_json_string /etc/docker/daemon.json max-size 99m
inv0=$(invocation_id)
mark=$(docker_starts_mark)
kill_when 'daemon_json_says 10m'
check "daemon.json was written by the killed run" daemon_json_says 10m
check "the restart owed survived the kill" test -e "$owed"
recovers "$mark" "$inv0"
