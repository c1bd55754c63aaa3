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

recovers() {
	expect_exit 2 dw plan
	expect_contains "$OUT" "restart docker.service" "plan shows the restart still owed"
	local inv0 starts
	inv0=$(invocation_id)
	starts=$(docker_starts_mark)
	expect_exit 2 dw apply
	expect_ne "$(invocation_id)" "$inv0" "the next run restarted docker.service"
	expect_eq "$(docker_starts_since "$starts")" 1 "docker.service started exactly once"
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
# shellcheck disable=SC2016 # evaluated later by kill_when
kill_when '[[ -e $owed ]]'
check "the restart owed survived the kill" test -e "$owed"
expect_eq "$(invocation_id)" "$inv0" "the killed run did not restart docker"
recovers

# 2. Killed right after daemon.json was written, before the restart ends.
set_json_string /etc/docker/daemon.json max-size 99m
kill_when 'daemon_json_says 10m'
check "daemon.json was written by the killed run" daemon_json_says 10m
check "the restart owed survived the kill" test -e "$owed"
recovers
