#!/bin/bash
# run.sh: dockward's acceptance scenarios, the same in the sandbox machine
# (integration/acceptance_test.go) and in the Ubuntu 24.04 Vagrant VM.
#
#   run.sh [-l] [SCENARIO...]
#
# SCENARIO is a file name or a prefix of one (10, 1, 40-firewall); none means
# all, in order. -l lists them. Each NN-name.sh runs in its own bash with
# lib.sh loaded, prints PASS/FAIL lines, and the run ends with
# "N passed, N failed". Exit status: 0 when nothing failed.
#
# The scenarios reconfigure docker, /etc/subuid and the firewall: they run
# only on a throwaway machine (one with /etc/dockward-testbed, which the
# sandbox tree has, or with DOCKWARD_THROWAWAY=1, which the Vagrant VM sets).
# DOCKWARD names the binary (default: dockward on PATH).
set -u
here=$(cd "$(dirname "$0")" && pwd)

list=0
if [[ ${1:-} == -l ]]; then list=1; shift; fi

all=()
for f in "$here"/[0-9][0-9]-*.sh; do [[ -e $f ]] && all+=("${f##*/}"); done # globs sort
selected=()
if (($# == 0)); then
	selected=("${all[@]}")
else
	for want in "$@"; do
		found=0
		for s in "${all[@]}"; do
			if [[ $s == "$want"* ]]; then selected+=("$s"); found=1; fi
		done
		if ((found == 0)); then echo "run.sh: no scenario matches '$want'" >&2; exit 1; fi
	done
fi
if ((list)); then printf '%s\n' "${selected[@]}"; exit 0; fi

if [[ ! -e /etc/dockward-testbed && ${DOCKWARD_THROWAWAY:-} != 1 ]]; then
	echo "run.sh: refusing to run: the scenarios reconfigure docker, /etc/subuid and the firewall." >&2
	echo "run.sh: run them on a throwaway machine (/etc/dockward-testbed exists) or set DOCKWARD_THROWAWAY=1." >&2
	exit 1
fi
if (($(id -u) != 0)); then echo "run.sh: must run as root" >&2; exit 1; fi

export DOCKWARD=${DOCKWARD:-dockward}
if ! command -v "$DOCKWARD" >/dev/null; then echo "run.sh: $DOCKWARD not found" >&2; exit 1; fi
export DW_RESULTS
DW_RESULTS=$(mktemp)
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"
trap 'rm -f "$DW_RESULTS"; uncount_docker_starts' EXIT
export DW_DOCKER_STARTS
# docker.service's starts are counted from a trace of its InvocationID (see
# lib.sh), never from journal text, whose wording changes between systemd
# versions.
if ! count_docker_starts; then
	echo "run.sh: cannot install the docker.service start trace ($DW_DOCKER_DROPIN)" >&2
	exit 1
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
echo "dockward acceptance scenarios on $(hostname) ($(. /etc/os-release && echo "$PRETTY_NAME"), $("$DOCKWARD" version 2>&1 | head -n 1))"
echo "Docker $(docker version --format '{{.Server.Version}}' 2>&1 | head -n 1), $(systemctl --version | head -n 1)"
t0=$(now)
for s in "${selected[@]}"; do
	name=${s%.sh}
	echo "=== $name"
	before=$(grep -c FAIL "$DW_RESULTS")
	start=$(now)
	# Its own bash: a scenario's variables, traps and exits stay its own.
	SCENARIO=$name bash -c '. "$1/lib.sh"; . "$1/$2"' run.sh "$here" "$s"
	rc=$?
	if ((rc != 0)) && (($(grep -c FAIL "$DW_RESULTS") == before)); then
		# It stopped without saying why (a syntax error, a crash): that is a failure too.
		echo "FAIL: $name: scenario exited $rc"
		echo FAIL >>"$DW_RESULTS"
	fi
	echo "--- $name took $(elapsed "$start")"
done
passed=$(grep -c PASS "$DW_RESULTS")
failed=$(grep -c FAIL "$DW_RESULTS")
skipped=$(grep -c SKIP "$DW_RESULTS")
echo "all scenarios took $(elapsed "$t0")"
((skipped > 0)) && echo "$skipped skipped"
echo "$passed passed, $failed failed"
((failed == 0))
