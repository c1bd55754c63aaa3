# 52-service-rollback: a setting that passes `dockerd --validate` but stops
# dockerd at start ("storage-driver": "zfs" without ZFS). apply writes it,
# the restart fails, dockward puts the last-known-good daemon.json back,
# resets docker's start limit, restarts it on the old file, and reports
# rolled back with exit 4. docker is active again.

converge
need "docker.service is active" systemctl is-active --quiet docker.service
need "no configuration file of our own yet" test ! -e /etc/dockward/dockward.hcl

mkdir -p /etc/dockward
dw init | sed '/"userland-proxy"/a\    "storage-driver"    = "zfs"' >/etc/dockward/dockward.hcl
chmod 600 /etc/dockward/dockward.hcl
need "the configuration asks for zfs" grep -q '"storage-driver" *= *"zfs"' /etc/dockward/dockward.hcl
need "it is valid" "$DOCKWARD" validate

sums0=$(checksums /etc/docker/daemon.json)
inv0=$(invocation_id)

expect_exit 4 dw apply
out=$OUT
expect_contains "$out" "rolled back" "apply says it rolled back"
grep -m 3 'rolled back: ' <<<"$out" | while IFS= read -r l; do note "$l"; done
expect_eq "$(checksums /etc/docker/daemon.json)" "$sums0" "daemon.json is the last-known-good one again"
check "docker.service is active again" systemctl is-active --quiet docker.service
expect_ne "$(invocation_id)" "$inv0" "docker.service runs a new invocation (restarted on the old file)"
check "the Engine API answers" docker version
expect_ne "$(systemctl show -p Result --value docker.service)" "start-limit-hit" "docker.service did not hit its start limit"
report=/var/lib/dockward/last-report.json
check "the run report says rolled_back" grep -q '"rolled_back"' "$report"
check "no restart is owed: docker runs the files on disk" test ! -e /var/lib/dockward/restart-owed.json

rm -f /etc/dockward/dockward.hcl
expect_exit 0 dw plan
