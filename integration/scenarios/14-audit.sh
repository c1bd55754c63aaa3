# 14-audit: `dockward audit` reads the live host and its containers and
# changes nothing: on a converged host with a capped, unprivileged container
# every check passes (exit 0); a privileged container with the Docker socket
# mounted fails it (exit 4), named in the report.

converge
wait_docker_active
ensure_busybox

files=(/etc/docker/daemon.json /etc/subuid /etc/subgid)
sums0=$(checksums "${files[@]}")
inv0=$(invocation_id)

docker rm -f dw-audit-good dw-audit-bad >/dev/null 2>&1
need "a hardened container runs" docker run -d --name dw-audit-good busybox:local sleep 600
expect_exit 0 dw audit
expect_contains "$OUT" "PASS  userns-remap" "audit sees userns-remap in effect"
expect_contains "$OUT" "PASS  log-caps             dw-audit-good" "audit sees the container's json-file caps"

need "a privileged container runs" docker run -d --name dw-audit-bad --privileged --userns=host \
	-v /run/docker.sock:/var/run/docker.sock busybox:local sleep 600
expect_exit 4 dw audit --format json
expect_contains "$OUT" '"format_version": "1"' "audit json carries format_version"
expect_match "$OUT" '"check": "not-privileged"' "audit json names the failed check"
expect_contains "$OUT" '"target": "dw-audit-bad"' "audit json names the container"

docker rm -f dw-audit-good dw-audit-bad >/dev/null 2>&1
expect_eq "$(checksums "${files[@]}")" "$sums0" "audit changed no file"
expect_eq "$(invocation_id)" "$inv0" "audit restarted nothing"
