# shellcheck shell=bash
# 60-agent: dockward.service, the resident agent, as the package installs it:
# it starts and reports READY over sd_notify; with nobody running apply, it
# corrects an edited daemon.json, a deleted nftables table and a removed
# dockremap subuid line, and gives a Docker network declared in its
# configuration its rules once the network is created; a docker restart of
# its own sets off no further runs; SIGHUP with a bad configuration keeps
# the running one; SIGTERM stops it cleanly. `dockward status` shows it
# running (and refuses a second agent), then stopped.
#
# The unit is the installed one (the package's) or, where dockward is not
# installed from the package (the sandbox machines), dist/dockward.service
# from the tree, with the binary at /usr/bin/dockward as the unit expects.

here=${1:?run by run.sh}
conf=/etc/dockward/dockward.hcl
added=()     # files this scenario put in place, removed at the end
conf_backup= # the operator's configuration, put back at the end

stateless_table() { nft -s list table inet dockward 2>/dev/null; }

cleanup() {
	systemctl stop dockward.service 2>/dev/null
	docker network rm later >/dev/null 2>&1
	agent_cleanup "$conf" "$conf_backup"
}
trap cleanup EXIT

converge
wait_docker_active

install_agent_unit "$here"
mkdir -p /etc/dockward
if [[ -e $conf ]]; then
	conf_backup=$(mktemp /root/dockward.hcl.XXXXXX)
	cp -p "$conf" "$conf_backup"
fi
install -m 0600 /dev/null "$conf"
metrics=/var/lib/dockward/scenario-60.prom
"$DOCKWARD" init | sed "s|metrics_textfile = \"\"|metrics_textfile = \"$metrics\"|" >"$conf"
need "the scenario's configuration sets metrics_textfile" grep -q "metrics_textfile = \"$metrics\"" "$conf"
added+=("$metrics")
# runs: how many converges the agent has done (dockward_runs_total, all results).
runs() { awk '/^dockward_runs_total/ { s += $2 } END { print s + 0 }' "$metrics" 2>/dev/null; }

# --- READY
cursor=$(journal_cursor)
inv=$(invocation_id)
check "systemctl start dockward.service returns (Type=notify: after READY=1)" timeout 150 systemctl start dockward.service
expect_eq "$(show Type)" notify "dockward.service is Type=notify"
expect_eq "$(show ActiveState)" active "dockward.service is active: it reported READY"
expect_match "$(show StatusText)" '^last run [0-9:]+: converged$' "STATUS= says the start converge found nothing to do"
expect_eq "$(invocation_id)" "$inv" "starting the agent on a converged host did not restart docker"
pid=$(show MainPID)

# --- dockward status: the running agent, as it published itself
wait_for 30 "status shows the start converge" bash -c '"$0" status --format json | grep -q "\"trigger\": \"start\""' "$DOCKWARD"
expect_exit 0 "$DOCKWARD" status
expect_contains "$OUT" "Agent:          running, pid $pid, since " "status names the running agent and its pid"
expect_contains "$OUT" "Configuration:  $conf" "status names the configuration file"
expect_contains "$OUT" "trigger: start" "status shows the last run's trigger"
expect_match "$OUT" '^Next backstop:  [0-9-]+ [0-9:]+ ' "status shows the next backstop"
expect_contains "$OUT" "Nothing failing" "status: nothing failing (pending items, as auditd missing in the sandbox, are no failure)"
expect_exit 0 "$DOCKWARD" status --format json
expect_contains "$OUT" '"health": "ok"' "status --format json: health ok"
expect_exit 1 "$DOCKWARD" run
expect_contains "$OUT" "another dockward agent (pid $pid" "a second dockward run is refused, naming the running agent"
expect_match "$(cat "$metrics")" '^dockward_module_consecutive_failures\{module="docker_daemon"\} 0$' "the textfile has the failures-in-a-row gauge"
expect_match "$(cat "$metrics")" '^dockward_agent_next_backstop_timestamp_seconds [0-9.e+]+$' "the textfile has the next backstop"

daemon_sum=$(checksums /etc/docker/daemon.json)
subuid_sum=$(checksums /etc/subuid /etc/subgid)
table=$(stateless_table)
need "the firewall table exists" test -n "$table"

# --- daemon.json edited by hand
cursor=$(journal_cursor)
starts=$(docker_starts_mark)
set_json_string /etc/docker/daemon.json max-size 99m
wait_for 30 "daemon.json corrected" bash -c '[[ $(sha256sum /etc/docker/daemon.json) == "$0" ]]' "$daemon_sum"
expect_eq "$(checksums /etc/docker/daemon.json)" "$daemon_sum" "an edited daemon.json is put back by the agent"
wait_log 120 "restart docker.service: verified"
wait_docker_active
expect_eq "$(docker_starts_since "$starts")" 1 "docker restarted once for the corrected daemon.json"

# --- the nftables table deleted
starts=$(docker_starts_mark)
nft delete table inet dockward
wait_for 30 "table inet dockward back" nft list table inet dockward
expect_eq "$(stateless_table)" "$table" "a deleted table inet dockward is put back, rule for rule"
expect_eq "$(docker_starts_since "$starts")" 0 "the firewall's correction restarted nothing"

# --- the dockremap subuid line removed
cursor=$(journal_cursor)
starts=$(docker_starts_mark)
sed -i '/^dockremap:/d' /etc/subuid
wait_for 30 "subuid line back" grep -q '^dockremap:' /etc/subuid
expect_eq "$(checksums /etc/subuid /etc/subgid)" "$subuid_sum" "a removed dockremap subuid line is put back"
wait_log 120 "restart docker.service: verified"
wait_docker_active

# --- no storm: its own writes and docker restarts set off no run, and
# nothing runs while nothing changes
sleep 5
expect_eq "$(runs)" 4 "four runs in all (start, daemon.json, table, subuid): none for its own writes or docker restarts"
expect_eq "$(docker_starts_since "$starts")" 1 "docker restarted once for the subuid change"
expect_eq "$(show MainPID)" "$pid" "the agent is the same process"

# --- no blind spot: the table deleted while a docker restart is verified.
# dockerd's start is made 5 s slower (a runtime drop-in) so that the window
# is certain; on a host with many containers it is far longer anyway.
slow=/run/systemd/system/docker.service.d/95-dockward-scenario-slow-start.conf
added+=("$slow")
printf '[Service]\nExecStartPre=/bin/sleep 5\n' >"$slow"
systemctl daemon-reload
cursor=$(journal_cursor)
set_json_string /etc/docker/daemon.json max-size 98m
wait_for 30 "docker.service restarting (activating)" bash -c '[[ $(systemctl is-active docker.service) == activating ]]'
deleted=$(date +%s%N)
nft delete table inet dockward
# Polled every 10 ms (wait_for's 200 ms would hide the figure), for 30 s.
for ((i = 0; i < 3000; i++)); do nft list table inet dockward >/dev/null 2>&1 && break; sleep 0.01; done
back=$(date +%s%N)
state=$(systemctl is-active docker.service)
expect_ne "$state" active "the deleted table came back while docker.service was still starting (it was $state)"
note "table back $(((back - deleted) / 1000000)) ms after its deletion, during the docker restart"
expect_eq "$(stateless_table)" "$table" "...rule for rule"
expect_not_contains "$(agent_log)" "restart docker.service: verified" "...before the agent's restart of docker was verified"
wait_log 120 "restart docker.service: verified"
expect_contains "$(agent_log)" "lane=side" "the table was put back by the side lane"
wait_docker_active

# --- SIGTERM while the agent waits for a docker restart: it stops at once;
# the restart systemd is carrying out goes on, and the next agent finds it
# done (the journal's owed restart, written before it) without another.
# Three drifts above restarted docker within ten minutes, which makes
# docker.service flap (README: "When something keeps undoing dockward's
# work"); a reload starts that count afresh.
check "systemctl reload dockward.service" timeout 150 systemctl reload dockward.service
cursor=$(journal_cursor)
set_json_string /etc/docker/daemon.json max-size 96m
wait_for 30 "docker.service restarting (activating)" bash -c '[[ $(systemctl is-active docker.service) == activating ]]'
stop_begin=$(date +%s%N)
check "systemctl stop dockward.service during the restart wait" timeout 150 systemctl stop dockward.service
stop_end=$(date +%s%N)
state=$(systemctl is-active docker.service)
note "the agent stopped $(((stop_end - stop_begin) / 1000000)) ms after SIGTERM, docker.service still $state"
expect_ne "$state" active "...before the restart it waited for was done"
expect_eq "$(show Result)" success "...cleanly (exit 0)"
wait_docker_active
starts=$(docker_starts_mark)
check "the agent starts again" timeout 150 systemctl start dockward.service
expect_eq "$(docker_starts_since "$starts")" 0 "the new agent found the owed restart done: no second restart"
expect_eq "$(checksums /etc/docker/daemon.json)" "$daemon_sum" "daemon.json is the corrected one"
rm -f "$slow"
systemctl daemon-reload

# --- a declared network created later gets its rules (SIGHUP loads the config)
cursor=$(journal_cursor)
sed -i 's/^  network "isolated" {/  network "later" {\n    egress_allow {\n      proto = "tcp"\n      ports = [443]\n      to    = ["192.0.2.0\/24"]\n    }\n  }\n\n  network "isolated" {/' "$conf"
need "the configuration with network later is valid" "$DOCKWARD" validate -c "$conf"
systemctl reload dockward.service
wait_log 30 "reload: configuration reloaded"
wait_log 30 'docker network \"later\"'
expect_contains "$(agent_log)" 'does not exist; create it, or set create = true' "the missing network is reported"
docker network create later >/dev/null
bridge=br-$(docker network inspect -f '{{.Id}}' later | cut -c1-12)
wait_for 30 "rules for $bridge" bash -c 'nft list chain inet dockward forward | grep -q "$0"' "$bridge"
expect_contains "$(nft list chain inet dockward forward)" "iifname \"$bridge\" jump egress_later" "the network created later gets its rules"
expect_contains "$(agent_log)" "event: firewall (docker: network later: create)" "...from Docker's network event"

# --- SIGHUP with a bad configuration keeps the running one
cursor=$(journal_cursor)
good=$(cat "$conf")
echo 'docker_daemon {' >>"$conf"
check_not "systemctl reload with a bad configuration fails (61-reload tests it in full)" timeout 150 systemctl reload dockward.service
wait_log 30 "keeping the running one"
expect_contains "$(agent_log)" "keeping the running one" "a bad configuration on SIGHUP is reported and the old one kept"
expect_match "$(agent_log)" "dockward.hcl:[0-9]+,[0-9]+-[0-9]+: " "the error names the place in the file"
expect_eq "$(show ActiveState)" active "the agent still runs"
expect_exit 0 "$DOCKWARD" status
expect_contains "$OUT" "reload REFUSED" "status shows the refused reload, and the agent still healthy"
nft delete table inet dockward
wait_for 30 "table inet dockward back" nft list table inet dockward
expect_contains "$(nft list chain inet dockward forward)" "jump egress_later" "it still corrects drift, with the configuration it kept"
printf '%s\n' "$good" >"$conf"

# --- flapping: another tool rewrites daemon.json every 200 ms for 30 s.
# Debian's docker.service allows three starts a minute; the sections above
# restarted it, so its counter starts afresh here (reset-failed resets it).
cursor=$(journal_cursor)
systemctl reset-failed docker.service
starts=$(docker_starts_mark)
fight_end=$((SECONDS + 30))
while ((SECONDS < fight_end)); do
	set_json_string /etc/docker/daemon.json max-size 97m
	sleep 0.2
done
wait_docker_active
n=$(docker_starts_since "$starts")
note "docker started $n times during 30 s of a tool rewriting daemon.json every 200 ms"
agent_log | grep -E 'msg="restart docker.service"|flapping|converged' | indent
check "docker restarted at most 3 times while daemon.json flapped (it did $n)" test "$n" -le 3
expect_match "$(agent_log)" "docker_daemon is flapping: dockward had to change [a-z, -]*max-size|docker_daemon is flapping: dockward had to change [a-z, -]*log-opts" "the agent reports docker_daemon flapping, naming what keeps being undone"
expect_contains "$(agent_log)" "flapping=true" "...as a warning with the flapping field, for log searches"
expect_eq "$(show ActiveState)" active "the agent still runs"
expect_contains "$(cat /etc/docker/daemon.json)" '"97m"' "it leaves the file alone during its back-off"
expect_match "$("$DOCKWARD" status)" "docker_daemon +changed: .*FLAPPING, left alone until" "dockward status shows docker_daemon flapping"
wait_for 10 "the flapping gauge" grep -q '^dockward_module_flapping{module="docker_daemon"} 1' "$metrics"
expect_contains "$(cat "$metrics")" 'dockward_module_flapping{module="docker_daemon"} 1' "...and the metrics textfile"

# --- SIGTERM stops it cleanly
# shellcheck disable=SC2034 # read by agent_log (lib.sh)
cursor=$(journal_cursor)
check "systemctl stop dockward.service" timeout 150 systemctl stop dockward.service
expect_eq "$(show ActiveState)" inactive "the agent stopped"
expect_eq "$(show Result)" success "it exited cleanly on SIGTERM"
expect_eq "$(show ExecMainStatus)" 0 "exit status 0"
expect_contains "$(agent_log)" 'msg=stopping' "it logged its stop"
expect_exit 3 "$DOCKWARD" status
expect_contains "$OUT" "not running (stopped " "after systemctl stop, status says the agent stopped (exit 3)"
expect_exit 3 "$DOCKWARD" status --format json
expect_contains "$OUT" '"health": "not_running"' "status --format json: health not_running"
