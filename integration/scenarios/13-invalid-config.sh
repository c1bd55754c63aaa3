# 13-invalid-config: a configuration with errors is refused with exit 1 by
# validate, plan and apply, with the file and line; nothing on the host
# changes. So is a configuration file that others can write.

converge
need "docker.service is active" systemctl is-active --quiet docker.service
mkdir -p /etc/dockward
files=(/etc/docker/daemon.json /etc/subuid /etc/subgid)
sums0=$(checksums "${files[@]}")
inv0=$(invocation_id)
starts=$(docker_starts_mark)

bad=/etc/dockward/acceptance-bad.hcl
cat >"$bad" <<'HCL'
docker_daemon {
  userns_remap = "default"
  log_optz     = { max-size = "1k" }
}
HCL
chmod 0644 "$bad"
expect_exit 1 dw validate -c "$bad"
expect_contains "$OUT" "acceptance-bad.hcl:3" "the error names file and line"
expect_contains "$OUT" "log_opts" "the error suggests log_opts"
expect_exit 1 dw validate -c "$bad" --format json
expect_match "$OUT" '"valid": *false' "json output says valid false"
expect_exit 1 dw plan -c "$bad"
expect_exit 1 dw apply -c "$bad"

cat >"$bad" <<'HCL'
subordinate_ids "dockremap" {
  count = 65536
HCL
expect_exit 1 dw apply -c "$bad"
expect_contains "$OUT" "acceptance-bad.hcl" "a syntax error names the file"

dw init >"$bad"
chmod 0666 "$bad"
expect_exit 1 dw apply -c "$bad"
expect_match "$OUT" "writable|permission|mode" "a world-writable config is refused, saying why"
chmod 0644 "$bad"
expect_exit 0 dw validate -c "$bad"
rm -f "$bad"

expect_eq "$(checksums "${files[@]}")" "$sums0" "daemon.json, subuid and subgid unchanged"
expect_eq "$(invocation_id)" "$inv0" "docker.service not restarted"
expect_eq "$(docker_starts_since "$starts")" 0 "docker.service not started again"
