# 51-service-log-driver-conflict: a drop-in gives dockerd --log-driver on its
# command line while daemon.json sets "log-driver": dockerd would refuse to
# start. dockward refuses to write daemon.json (naming log-driver), leaves
# docker running untouched, and exits 4. Without the drop-in it converges.

converge
need "docker.service is active" systemctl is-active --quiet docker.service

dropin=/etc/systemd/system/docker.service.d/50-acceptance-log-driver.conf
exec_start=$(systemctl cat docker.service | sed -n 's/^ExecStart=\(\/.*\)/\1/p' | tail -n 1)
need "docker.service has an ExecStart" test -n "$exec_start"
mkdir -p "$(dirname "$dropin")"
# Keep $DOCKER_OPTS (Debian) where it was: the flag goes at the end.
printf '[Service]\nExecStart=\nExecStart=%s --log-driver=journald\n' "$exec_start" >"$dropin"
need "daemon-reload" systemctl daemon-reload
need "the drop-in is in effect" bash -c 'systemctl show -p ExecStart docker.service | grep -q -- --log-driver=journald'

# Give dockward something to write: drift the log cap.
set_json_string /etc/docker/daemon.json max-size 99m
sums0=$(checksums /etc/docker/daemon.json)
inv0=$(invocation_id)

expect_exit 4 dw apply
expect_contains "$OUT" "log-driver" "the refusal names log-driver"
expect_eq "$(checksums /etc/docker/daemon.json)" "$sums0" "daemon.json unchanged"
expect_eq "$(invocation_id)" "$inv0" "docker.service untouched (InvocationID unchanged)"
check "docker.service still active" systemctl is-active --quiet docker.service

rm -f "$dropin"
need "daemon-reload" systemctl daemon-reload
expect_exit 2 dw apply
check "daemon.json has max-size 10m again" grep -q '"max-size": *"10m"' /etc/docker/daemon.json
check "docker.service is active" systemctl is-active --quiet docker.service
expect_exit 0 dw plan
