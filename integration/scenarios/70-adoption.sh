# shellcheck shell=bash
# 70-adoption: dockward adopted on a Docker host that already runs workloads:
# two running containers (restart policy always), an image, a user-defined
# network with options and a named volume with data, and a daemon.json
# without userns-remap. Enabling userns-remap moves Docker to another data
# root, which would hide all of them.
#
#  1. the embedded default refuses: plan lists what would be hidden, apply
#     exits 4 (6 with the firewall's changes) naming them and the line that
#     chooses otherwise; daemon.json, subuid and subgid are unchanged, no
#     restart is owed, docker and the containers keep running; the agent
#     (dockward run) refuses the same way;
#  2. on_data_root_switch = "leave_behind" switches and says what it hid:
#     docker ps -a shows none of them afterwards;
#  3. switching back (userns_remap dropped) shows the old state again, the
#     volume's data included;
#  4. on_data_root_switch = "migrate" ends with the same containers running
#     under userns-remap, the image, the network with its options, and the
#     volume's data readable and writable by the container's root.

conf=/etc/dockward/dockward.hcl
conf_backup=
ids_files=(/etc/docker/daemon.json /etc/subuid /etc/subgid)
owed=/var/lib/dockward/restart-owed.json
report=/var/lib/dockward/last-report.json

remove_workloads() {
	docker rm -f adopt-web adopt-db >/dev/null 2>&1
	docker network rm adoptnet >/dev/null 2>&1
	docker volume rm adoptdata >/dev/null 2>&1
}

cleanup() {
	remove_workloads
	if [[ -n $conf_backup ]]; then mv -f "$conf_backup" "$conf"; else rm -f "$conf"; fi
	# Leave the host converged (userns-remap on), as the next scenario
	# expects: whatever this scenario left in the root it ends on is gone,
	# and what stays in the other root is left behind knowingly.
	mkdir -p /etc/dockward
	local tmp
	tmp=$(mktemp)
	"$DOCKWARD" init | sed 's/on_data_root_switch = "refuse"/on_data_root_switch = "leave_behind"/' >"$tmp"
	"$DOCKWARD" apply -c "$tmp" >/dev/null 2>&1
	rm -f "$tmp"
	wait_docker_active
	remove_workloads
}
trap cleanup EXIT

# config MODE [no-remap]: the embedded default with on_data_root_switch =
# MODE (and without userns_remap), as /etc/dockward/dockward.hcl.
config() {
	mkdir -p /etc/dockward
	local edit='s/on_data_root_switch = "refuse"/on_data_root_switch = "'"$1"'"/'
	if [[ ${2:-} == no-remap ]]; then
		dw init | sed -e "$edit" -e '/userns_remap = "default"/d' >"$conf"
	else
		dw init | sed -e "$edit" >"$conf"
	fi
	chmod 600 "$conf"
	need "the configuration says on_data_root_switch = $1" grep -q "on_data_root_switch = \"$1\"" "$conf"
	need "the configuration with on_data_root_switch = $1 is valid" "$DOCKWARD" validate
}

running() { [[ $(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]]; }
root_dir() { docker info --format '{{.DockerRootDir}}'; }

if [[ -e $conf ]]; then
	conf_backup=$(mktemp)
	mv "$conf" "$conf_backup"
fi

# --- The host as an operator has it: docker without userns-remap, workloads.
need "docker.service is active" systemctl is-active --quiet docker.service
if grep -qs userns-remap /etc/docker/daemon.json; then
	# An earlier scenario converged this host: take userns-remap out by
	# hand, as an operator who never had it would have the file.
	remove_workloads
	sed -i '/"userns-remap"/d' /etc/docker/daemon.json
	systemctl reset-failed docker.service
	need "docker restarts without userns-remap" systemctl restart docker.service
elif [[ ! -e /etc/docker/daemon.json ]]; then
	# live-restore, as many operators have it: containers outlive a docker
	# restart, so a switch must stop them or they run on unseen.
	mkdir -p /etc/docker
	echo '{ "live-restore": true }' >/etc/docker/daemon.json
	systemctl reset-failed docker.service
	need "docker restarts with live-restore" systemctl restart docker.service
fi
wait_docker_active
need "docker uses /var/lib/docker" test "$(root_dir)" = /var/lib/docker
need "docker runs with live-restore" test "$(docker info --format '{{.LiveRestoreEnabled}}')" = true
remove_workloads
need "busybox:local in /var/lib/docker" ensure_busybox
need "a user-defined network with options" docker network create --driver bridge \
	--subnet 10.77.0.0/24 --opt com.docker.network.driver.mtu=1400 --label adopt=yes adoptnet
need "a named volume" docker volume create adoptdata
need "container adopt-web" docker run -d --name adopt-web --restart always --network adoptnet \
	-v adoptdata:/data busybox:local sh -c 'echo hello >/data/hello; exec sleep 1d'
need "container adopt-db" docker run -d --name adopt-db --restart always --network adoptnet \
	busybox:local sleep 1d
wait_for 20 "the volume holds data" docker exec adopt-web test -s /data/hello

# --- 1. The default refuses.
sums0=$(checksums "${ids_files[@]}")
inv0=$(invocation_id)
expect_exit 2 dw plan
plan=$OUT
expect_match "$plan" '~ data root: /var/lib/docker -> /var/lib/docker/' "plan shows the data-root switch"
expect_contains "$plan" "apply refuses this" "plan says apply refuses it"
expect_contains "$plan" "- container adopt-web (running)" "plan lists container adopt-web, running"
expect_contains "$plan" "- container adopt-db (running)" "plan lists container adopt-db, running"
if grep -qs '"busybox:local"' /var/lib/docker/*.*/image/*/repositories.json; then
	# An earlier scenario imported it into the remapped root: not hidden.
	expect_not_contains "$plan" "- image busybox:local" "plan does not list the image the new root holds too"
else
	expect_contains "$plan" "- image busybox:local" "plan lists the image"
fi
expect_contains "$plan" "- network adoptnet" "plan lists the network"
expect_contains "$plan" "- volume adoptdata" "plan lists the volume"

expect_exit "4|6" dw apply
out=$OUT
expect_contains "$out" "refused to move Docker's data root from /var/lib/docker" "apply says it refused"
expect_contains "$out" "adopt-web running" "the refusal names the containers"
expect_contains "$out" 'on_data_root_switch = \"migrate\"' "the refusal names the line that chooses otherwise"
expect_eq "$(checksums "${ids_files[@]}")" "$sums0" "daemon.json, subuid and subgid unchanged"
check "no restart is owed" test ! -e "$owed"
expect_eq "$(invocation_id)" "$inv0" "docker.service was not restarted"
check "container adopt-web still runs" running adopt-web
check "container adopt-db still runs" running adopt-db
expect_eq "$(root_dir)" /var/lib/docker "docker still uses /var/lib/docker"
check "the report says docker_daemon failed" grep -q '"error": "refused to move' "$report"
check "the firewall still converged (table inet dockward present)" nft list table inet dockward

# The agent corrects drift with the same engine: its first converge (as
# after someone removed userns-remap by hand and started containers since)
# refuses too, and hides nothing.
agentlog=$(mktemp)
"$DOCKWARD" run >"$agentlog" 2>&1 &
agent=$!
wait_for 60 "the agent's first converge" grep -q "refused to move Docker's data root" "$agentlog"
check "the agent refused the switch" grep -q "refused to move Docker's data root" "$agentlog"
kill "$agent" 2>/dev/null
wait "$agent" 2>/dev/null
expect_eq "$(checksums "${ids_files[@]}")" "$sums0" "after the agent: daemon.json, subuid and subgid unchanged"
expect_eq "$(invocation_id)" "$inv0" "after the agent: docker.service was not restarted"
check "after the agent: container adopt-web still runs" running adopt-web
rm -f "$agentlog"

# --- 2. leave_behind switches and says what it hid.
config leave_behind
expect_exit 2 dw plan
expect_contains "$OUT" "stay behind, hidden" "plan says what stays behind"
expect_exit 2 dw apply
out=$OUT
expect_contains "$out" "- container adopt-web (running)" "apply lists the container it hid"
expect_contains "$out" "stays behind in /var/lib/docker" "apply says where they stay"
check "the report lists what was hidden" grep -q 'container adopt-web (running)' "$report"
wait_docker_active
remapped=$(root_dir)
expect_match "$remapped" '^/var/lib/docker/[0-9]+\.[0-9]+$' "docker uses the remapped root"
expect_eq "$(docker ps -aq --filter name=adopt- | wc -l)" 0 "docker ps -a shows none of the containers"
check_not "the network is not shown" docker network inspect adoptnet
check_not "the volume is not shown" docker volume inspect adoptdata
check "the old root is still on disk" test -d /var/lib/docker/volumes/adoptdata/_data
expect_eq "$(pgrep -fc 'sleep 1d')" 0 "no process of the hidden containers runs on unseen (live-restore)"

# --- 3. Switching back shows the old state again.
config leave_behind no-remap
expect_exit 2 dw plan
expect_contains "$OUT" "+ container adopt-web" "plan says the old containers reappear"
expect_exit 2 dw apply
wait_docker_active
expect_eq "$(root_dir)" /var/lib/docker "docker uses /var/lib/docker again"
wait_for 30 "adopt-web runs again" running adopt-web
check "container adopt-web runs again" running adopt-web
wait_for 30 "adopt-db runs again" running adopt-db
check "container adopt-db runs again" running adopt-db
check "the network is back" docker network inspect adoptnet
expect_eq "$(docker exec adopt-web cat /data/hello 2>&1)" hello "the volume's data is back"

# --- 4. migrate moves them across.
config migrate
expect_exit 2 dw plan
expect_contains "$OUT" "moves to /var/lib/docker/" "plan says what moves"
grep -E 'cannot move' <<<"$OUT" | head -n 5 | while IFS= read -r l; do note "$l"; done
sums0=$(checksums "${ids_files[@]}")
t0=$SECONDS
dw apply >/tmp/70-migrate.out 2>&1
code=$?
out=$(cat /tmp/70-migrate.out)
if [[ $out == *"has no migrator built in"* ]]; then
	skip "migrate: this dockward has no migrator (modules/daemonjson/migrate not built in); checking that nothing was written"
	expect_eq "$(checksums "${ids_files[@]}")" "$sums0" "daemon.json, subuid and subgid unchanged"
	check "container adopt-web still runs" running adopt-web
	exit 0
fi
expect_eq "$code" 2 "apply with migrate exits 2"
[[ $code == 2 ]] || printf '%s\n' "$out" | tail -n 40 | indent
note "migrate took $((SECONDS - t0)) s"
expect_eq "$(pgrep -fc 'sleep 1d')" 2 "only the moved containers' processes run: none of the old root's runs on unseen"
wait_docker_active
expect_eq "$(root_dir)" "$remapped" "docker uses the remapped root"
wait_for 60 "adopt-web runs" running adopt-web
check "container adopt-web runs under userns-remap" running adopt-web
wait_for 30 "adopt-db runs" running adopt-db
check "container adopt-db runs under userns-remap" running adopt-db
expect_eq "$(docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' adopt-web)" always "restart policy kept"
check "the image is present" docker image inspect busybox:local
expect_contains "$(docker network inspect -f '{{json .Options}}' adoptnet)" '"com.docker.network.driver.mtu":"1400"' "the network keeps its options"
expect_contains "$(docker network inspect -f '{{json .IPAM.Config}}' adoptnet)" '10.77.0.0/24' "the network keeps its subnet"
expect_eq "$(docker exec adopt-web cat /data/hello 2>&1)" hello "the volume's data is readable by the container's root"
check "the volume is writable by the container's root" docker exec adopt-web sh -c 'echo more >>/data/hello'
expect_eq "$(stat -c %u /var/lib/docker/volumes/adoptdata/_data/hello)" 0 "the old root's copy is untouched (still owned by 0)"
check "apply's output says what moved" grep -q 'container adopt-web: moved' /tmp/70-migrate.out
check "the run report says what moved" grep -q 'container adopt-web: moved' "$report"
check "the migration's record stays in the state directory" bash -c 'ls /var/lib/dockward/docker_daemon/migrate/*/result.json'
check_not "the exported image archives are gone after the move" bash -c 'ls -d /var/lib/dockward/docker_daemon/migrate/*/images'
rm -f /tmp/70-migrate.out
