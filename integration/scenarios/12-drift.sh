# 12-drift: someone edits daemon.json (max-size) and removes the dockremap
# line from /etc/subuid. plan exits 2 and names both without touching them;
# apply puts both back, restarts docker once, and then plan is empty.
# A key that dockward does not manage, added by hand, stays.

converge
need "docker.service is active" systemctl is-active --quiet docker.service
need "daemon.json has max-size 10m" grep -q '"max-size": *"10m"' /etc/docker/daemon.json

set_json_string /etc/docker/daemon.json max-size 99m
sed -i '/^dockremap:/d' /etc/subuid
need "the edit took" grep -q '"max-size": *"99m"' /etc/docker/daemon.json
files=(/etc/docker/daemon.json /etc/subuid /etc/subgid)
sums0=$(checksums "${files[@]}")
inv0=$(invocation_id)

expect_exit 2 dw plan
plan=$OUT
expect_contains "$plan" "max-size" "plan names the drifted max-size"
expect_contains "$plan" "99m" "plan shows the drifted value"
expect_match "$plan" "subuid|dockremap" "plan names the missing subuid range"
expect_eq "$(checksums "${files[@]}")" "$sums0" "plan changed no file"
expect_eq "$(invocation_id)" "$inv0" "plan restarted nothing"

starts=$(docker_starts_mark)
expect_exit 2 dw apply
check "daemon.json has max-size 10m again" grep -q '"max-size": *"10m"' /etc/docker/daemon.json
check "/etc/subuid has the dockremap range again" grep -q '^dockremap:[0-9]*:65536$' /etc/subuid
expect_ne "$(invocation_id)" "$inv0" "docker.service restarted for the new log caps"
expect_eq "$(docker_starts_since "$starts")" 1 "docker.service started exactly once"
check "docker.service is active" systemctl is-active --quiet docker.service
expect_exit 0 dw plan

need "busybox:local present" ensure_busybox
cid=$(docker create busybox:local true)
expect_contains "$(docker inspect -f '{{json .HostConfig.LogConfig}}' "$cid")" '"max-size":"10m"' "a new container has max-size 10m"
docker rm -f "$cid" >/dev/null

# An operator's own key is not dockward's business.
sed -i '0,/{/s//{\n  "labels": ["acceptance-operator-key"],/' /etc/docker/daemon.json
need "the operator key was added" grep -q acceptance-operator-key /etc/docker/daemon.json
expect_exit 0 dw plan
expect_exit 0 dw apply
check "the operator's key is still in daemon.json" grep -q acceptance-operator-key /etc/docker/daemon.json
# The whole line goes, so the file is byte for byte what dockward wrote: a
# blank line left here is the operator's formatting, which dockward keeps
# until it next rewrites the file (60-agent compares bytes after that).
sed -i '/"labels": \["acceptance-operator-key"\],/d' /etc/docker/daemon.json
