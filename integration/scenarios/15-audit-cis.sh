# 15-audit-cis: after `dockward apply` of the embedded default, `dockward
# audit` passes every section 1 to 3 check a host agent can fix, names the
# rest (1.1.1 separate partition where there is none; 2.8 default ulimits,
# which no value suits every host; 2.12 authorization plugin; 2.13 waived
# in the default with its reason), and flags a
# privileged container, one with the Docker socket mounted and one without
# limits with the right 5.x numbers and fields. Its junit and sarif output
# is well-formed (the Go test validates the same files against the SARIF
# 2.1.0 schema when DOCKWARD_AUDIT_OUT names a directory to keep them in).
#
# Sections 1.1.3-1.1.18 (audit rules) and 3.x (file modes) pass only with
# the audit_rules and docker_files modules in the embedded default. The
# audit judges the rule files: inside a container or nspawn machine the
# kernel's audit rules cannot be loaded or listed.

converge
wait_docker_active
ensure_busybox

docker rm -f dw-cis-priv dw-cis-sock dw-cis-nolimits >/dev/null 2>&1
need "a privileged container runs" docker run -d --name dw-cis-priv --privileged --userns=host busybox:local sleep 600
need "a container with the Docker socket runs" docker run -d --name dw-cis-sock -v /run/docker.sock:/var/run/docker.sock busybox:local sleep 600
need "a container without limits runs" docker run -d --name dw-cis-nolimits busybox:local sleep 600

expect_exit 4 dw audit
table=$OUT
# rows: VERDICT  NAME  TARGET  ID  DETAIL
rows() { printf '%s\n' "$table" | grep -E "^[A-Z]{4}  .*[[:space:]]${1//./\\.}[[:space:]]"; }
for id in 1.1.2 1.1.3 1.1.4 1.1.5 1.1.6 1.1.7 1.1.8 1.1.9 1.1.10 1.1.11 1.1.14 1.1.18 \
	2.2 2.3 2.4 2.5 2.6 2.7 2.9 2.10 2.11 2.14 2.15 2.16 2.17 2.18 \
	3.1 3.2 3.3 3.4 3.5 3.6 3.15 3.16 3.17 3.18 3.19 3.20 3.23 3.24; do
	verdicts=$(rows "$id" | cut -c1-4 | sort -u | tr '\n' ' ')
	expect_eq "$verdicts" "PASS " "CIS $id passes after apply"
done
expect_match "$(rows 2.13)" '^WAIV .*waived: json-file is kept on purpose' "2.13 is waived with the default's reason"
expect_match "$(rows 2.12)" '^FAIL ' "2.12 (no authorization plugin) is named as failing"
expect_match "$(rows 1.1.1)" '^(PASS|FAIL) ' "1.1.1 (separate partition) is decided"
# No default-ulimits value is safe on every host: the default sets none.
expect_match "$(rows 2.8)" '^(PASS|FAIL) ' "2.8 (default ulimits) is decided"

flag() { # flag ID CONTAINER FIELD
	expect_match "$(rows "$1")" "^FAIL  [a-z-]+ +$2 .*[[:space:]]$3: " "$1 flags $2 at $3"
}
flag 5.5 dw-cis-priv HostConfig.Privileged
flag 5.31 dw-cis-priv HostConfig.UsernsMode
flag 5.32 dw-cis-sock Mounts
flag 5.11 dw-cis-nolimits HostConfig.Memory
flag 5.12 dw-cis-nolimits HostConfig.CpuShares
flag 5.29 dw-cis-nolimits HostConfig.PidsLimit

expect_exit 4 dw audit --format json
expect_contains "$OUT" '"field": "HostConfig.Privileged"' "audit json names the field"
expect_contains "$OUT" '"benchmark": "CIS Docker Benchmark v1.6.0"' "audit json names the benchmark"

out=${DOCKWARD_AUDIT_OUT:-$(mktemp -d)}
mkdir -p "$out"
dw audit --format junit >"$out/audit.junit.xml"
expect_eq "$?" "4" "audit --format junit exits 4"
dw audit --format sarif >"$out/audit.sarif"
expect_eq "$?" "4" "audit --format sarif exits 4"
check "junit output is XML with a testsuites root" grep -q '^<testsuites ' "$out/audit.junit.xml"
check "sarif output is SARIF 2.1.0" grep -q '"version": "2.1.0"' "$out/audit.sarif"

docker rm -f dw-cis-priv dw-cis-sock dw-cis-nolimits >/dev/null 2>&1
