# shellcheck shell=bash
# 61-reload: `systemctl reload dockward` waits for the agent's reload and
# fails when the agent refuses the new configuration.
#
# dockward.service's ExecReload= is `dockward reload`: it sends SIGHUP and
# waits until the agent has read the configuration again and finished a
# converge with it. So when `systemctl reload` returns, what the new
# configuration declares is on the host (a firewall network's rules, and a
# daemon.json change with the docker restart it owes, verified); with a
# bad configuration it exits non-zero, the reason is in the journal and in
# the unit's status, and the agent runs on, still enforcing the previous
# configuration; a later good reload works. Timings of `systemctl reload`
# are printed (unchanged configuration, a firewall change, a change that
# restarts docker).
#
# The unit is the installed one or dist/dockward.service, as in 60-agent.

here=${1:?run by run.sh}
conf=/etc/dockward/dockward.hcl
dropin=/etc/dockward/conf.d/61-reload.hcl
added=()     # files this scenario put in place, removed at the end
conf_backup= # the operator's configuration, put back at the end

forward_chain() { nft list chain inet dockward forward 2>/dev/null; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# timed_reload: `systemctl reload dockward.service`, its exit status in
# $RC, its output in $OUT, how long it took (ms) in $MS.
timed_reload() {
	local t0
	t0=$(now_ms)
	OUT=$(timeout 330 systemctl reload dockward.service 2>&1)
	RC=$?
	MS=$(($(now_ms) - t0))
}

cleanup() {
	agent_cleanup "$conf" "$conf_backup"
	rmdir /etc/dockward/conf.d 2>/dev/null
}
trap cleanup EXIT

converge
wait_docker_active

install_agent_unit "$here"
mkdir -p /etc/dockward/conf.d
if [[ -e $conf ]]; then
	conf_backup=$(mktemp /root/dockward.hcl.XXXXXX)
	cp -p "$conf" "$conf_backup"
fi
install -m 0600 /dev/null "$conf"
"$DOCKWARD" init >"$conf"
good=$(cat "$conf")
need "the default configuration has max-size 10m" grep -q 'max-size = "10m"' "$conf"

check "systemctl start dockward.service" timeout 330 systemctl start dockward.service
expect_eq "$(show ActiveState)" active "the agent is active"
expect_contains "$(show ExecReload)" "/usr/bin/dockward reload" "ExecReload= is dockward reload"
pid=$(show MainPID)

# --- an unchanged configuration
cursor=$(journal_cursor)
times=()
for _ in 1 2 3; do
	timed_reload
	expect_eq "$RC" 0 "systemctl reload with an unchanged configuration succeeds" || printf '%s\n' "$OUT" | indent
	times+=("$MS")
done
note "systemctl reload, unchanged configuration: ${times[*]} ms"
wait_log 30 "runs the new configuration"
expect_match "$(agent_log)" "dockward reload: the agent \(pid $pid\) runs the new configuration; its converge finished" "ExecReload= logs that the agent reloaded and converged"

# --- a firewall change: its rules are in the kernel when reload returns.
# (The agent also sees the new drop-in by itself and may have applied it
# already: the daemon.json change below, which takes seconds, is the one
# that tells a reload that waits from one that does not.)
cursor=$(journal_cursor)
install -m 0600 /dev/null "$dropin"
added+=("$dropin")
cat >"$dropin" <<'EOF'
firewall {
  network "r61" {
    bridge = "br-r61"
    egress_allow {
      proto = "tcp"
      ports = [443]
      to    = ["192.0.2.0/24"]
    }
  }
}
EOF
need "the configuration with the drop-in is valid" "$DOCKWARD" validate
timed_reload
chain=$(forward_chain)
expect_eq "$RC" 0 "systemctl reload with a firewall change succeeds"
expect_contains "$chain" 'iifname "br-r61" jump egress_r61' "when systemctl reload returns, the new network's rules are in the kernel"
note "systemctl reload, a firewall network added: $MS ms"

# --- a change that restarts docker: done and verified when reload returns
cursor=$(journal_cursor)
starts=$(docker_starts_mark)
inv=$(invocation_id)
sed -i 's/max-size = "10m"/max-size = "20m"/' "$conf"
t0=$(now_ms)
(
	timeout 330 systemctl reload dockward.service >/tmp/61-reload.out 2>&1
	echo $? >/tmp/61-reload.rc
) &
bg=$!
# While it waits, systemd shows the unit reloading.
check "while systemctl reload waits, dockward.service is 'reloading'" wait_for 60 reloading bash -c '[[ $(systemctl show -p ActiveState --value dockward.service) == reloading ]]'
wait "$bg"
MS=$(($(now_ms) - t0))
after_inv=$(invocation_id)
json=$(cat /etc/docker/daemon.json)
expect_eq "$(cat /tmp/61-reload.rc)" 0 "systemctl reload with a daemon.json change succeeds" || indent </tmp/61-reload.out
expect_match "$json" '"max-size": *"20m"' "when systemctl reload returns, daemon.json has the new max-size"
expect_ne "$after_inv" "$inv" "when systemctl reload returns, docker has been restarted"
expect_eq "$(systemctl is-active docker.service)" active "...and is active"
expect_eq "$(docker_starts_since "$starts")" 1 "docker restarted once for the reload"
expect_eq "$(show ActiveState)" active "the agent is active again, not reloading"
note "systemctl reload, a daemon.json change that restarts docker: $MS ms"
wait_log 30 "restart docker.service: verified"
note "the journal, in the order journald received it:"
journalctl -q --no-pager -o short-precise -u dockward.service --after-cursor="$cursor" | grep -E 'trigger=reload|restart docker.service: verified|dockward reload:|Reload|reload' | indent

# --- a bad configuration: the reload fails, the agent runs on the old one
cursor=$(journal_cursor)
starts=$(docker_starts_mark)
echo 'docker_daemon {' >>"$conf"
timed_reload
expect_ne "$RC" 0 "systemctl reload with a bad configuration fails (exit $RC)"
note "systemctl reload, a bad configuration: $MS ms, exit $RC: $(printf '%s' "$OUT" | head -n 1)"
wait_log 30 "refused the new configuration"
expect_match "$(agent_log)" "dockward reload: the agent \(pid $pid\) refused the new configuration and keeps running the previous one: .*$conf:[0-9]+,[0-9]+-[0-9]+: Unclosed configuration block" "the journal says why, naming the place in the file"
expect_match "$(show StatusText)" "^reload failed, running the previous configuration: $conf:" "the unit's status says the reload failed and why"
expect_ne "$(show ReloadResult)" success "systemd records the reload as failed"
expect_eq "$(show ActiveState)" active "the agent still runs"
expect_eq "$(show MainPID)" "$pid" "...the same process"
nft delete table inet dockward
wait_for 30 "table inet dockward back" nft list table inet dockward
expect_contains "$(forward_chain)" 'iifname "br-r61" jump egress_r61' "it still enforces the previous configuration"
expect_eq "$(docker_starts_since "$starts")" 0 "the refused configuration restarted nothing"

# --- a good configuration again: the reload works
cursor=$(journal_cursor)
starts=$(docker_starts_mark)
printf '%s\n' "$good" >"$conf"
rm -f "$dropin"
timed_reload
chain=$(forward_chain)
json=$(cat /etc/docker/daemon.json)
expect_eq "$RC" 0 "systemctl reload after a refused one succeeds" || printf '%s\n' "$OUT" | indent
expect_not_contains "$chain" 'br-r61' "when it returns, the removed network's rules are gone"
expect_match "$json" '"max-size": *"10m"' "...and daemon.json has max-size 10m again"
expect_eq "$(docker_starts_since "$starts")" 1 "...docker restarted once for it"
expect_eq "$(show ReloadResult)" success "systemd records the reload as done"
expect_match "$(show StatusText)" '^last run [0-9:]+: ' "the status is the reload's converge again"
expect_eq "$(show MainPID)" "$pid" "one agent process throughout"
note "systemctl reload, back to the default configuration (docker restarts): $MS ms"
rm -f /tmp/61-reload.out /tmp/61-reload.rc
