# 10-first-apply: a fresh Docker host (docker running with Debian's or
# Ubuntu's defaults, no daemon.json, no dockremap) gets the embedded default.
# validate and plan change nothing; apply exits 2, restarts docker exactly
# once, and afterwards docker runs user-namespaced with capped json-file logs.

need "docker.service is active" systemctl is-active --quiet docker.service
need "a fresh host: no userns-remap in /etc/docker/daemon.json yet" \
	bash -c '! grep -qs userns-remap /etc/docker/daemon.json'
# The embedded default is what is tested: no config file, or the packaged one
# (which must be the same text).
# shellcheck disable=SC2016 # $0 is expanded by the inner bash
need "no /etc/dockward/dockward.hcl, or one equal to 'dockward init'" \
	bash -c '! test -e /etc/dockward/dockward.hcl || "$0" init | cmp -s - /etc/dockward/dockward.hcl' "$DOCKWARD"

files=(/etc/docker/daemon.json /etc/subuid /etc/subgid)
inv0=$(invocation_id)
sums0=$(checksums "${files[@]}")

expect_exit 0 dw validate
expect_exit 2 dw plan
plan=$OUT
expect_contains "$plan" "userns-remap" "plan shows userns-remap"
expect_contains "$plan" "max-size" "plan shows the log caps"
expect_contains "$plan" "dockremap" "plan shows the dockremap ranges"
expect_eq "$(checksums "${files[@]}")" "$sums0" "plan changed no file"
expect_eq "$(invocation_id)" "$inv0" "plan restarted nothing"

starts=$(docker_starts_mark)
expect_exit 2 dw apply
expect_ne "$(invocation_id)" "$inv0" "docker.service was restarted (InvocationID changed)"
expect_eq "$(docker_starts_since "$starts")" 1 "docker.service started exactly once during apply"
check "docker.service is active" systemctl is-active --quiet docker.service
check "/etc/subuid has a dockremap range" grep -q '^dockremap:[0-9]*:65536$' /etc/subuid
check "/etc/subgid has a dockremap range" grep -q '^dockremap:[0-9]*:65536$' /etc/subgid
check "the dockremap user exists" id dockremap
check "daemon.json is 0644 root:root" test "$(stat -c '%a %U:%G' /etc/docker/daemon.json)" = "644 root:root"

expect_contains "$(docker info --format '{{json .SecurityOptions}}')" "name=userns" "docker info shows userns"
expect_contains "$(docker info --format '{{.DockerRootDir}}')" "/var/lib/docker/" "docker uses a remapped data root"

need "busybox:local imported into the remapped data root" ensure_busybox
cid=$(docker create busybox:local true)
logcfg=$(docker inspect -f '{{json .HostConfig.LogConfig}}' "$cid")
docker rm -f "$cid" >/dev/null
expect_contains "$logcfg" '"Type":"json-file"' "a new container logs with json-file"
expect_contains "$logcfg" '"max-size":"10m"' "a new container has max-size 10m"
expect_contains "$logcfg" '"max-file":"3"' "a new container has max-file 3"

# Root in a container is an unprivileged host UID.
cid=$(docker run -d busybox:local sleep 60)
pid=$(docker inspect -f '{{.State.Pid}}' "$cid")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
docker rm -f "$cid" >/dev/null
check "container root runs as host UID $uid (>= 100000)" test "${uid:-0}" -ge 100000

expect_exit 0 dw plan
