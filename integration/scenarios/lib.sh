# shellcheck shell=bash
# lib.sh: assertions and host probes for dockward's acceptance scenarios.
# Sourced by run.sh; each scenario runs in its own bash with this loaded.
# Every assertion prints one "PASS: <scenario>: <what>" or "FAIL: ..." line and
# records it in $DW_RESULTS, which run.sh counts.

DOCKWARD=${DOCKWARD:-dockward}
SCENARIO=${SCENARIO:-adhoc}
DW_RESULTS=${DW_RESULTS:-/dev/null}

pass() { echo "PASS: $SCENARIO: $*"; echo PASS >>"$DW_RESULTS"; }
fail() { echo "FAIL: $SCENARIO: $*"; echo FAIL >>"$DW_RESULTS"; }
skip() { echo "SKIP: $SCENARIO: $*"; echo SKIP >>"$DW_RESULTS"; }
note() { echo "      $*"; }

# indent prints its input under a failed assertion, so the reason is next to it.
indent() { sed -e 's/^/        | /'; }

# expect_exit CODE CMD...: run CMD, keep its combined output in $OUT and its
# exit code in $CODE; pass when it exits CODE. CODE may be "0|2".
expect_exit() {
	local want=$1
	shift
	OUT=$("$@" 2>&1)
	CODE=$?
	if [[ "|$want|" == *"|$CODE|"* ]]; then
		pass "'$*' exits $CODE"
		return 0
	fi
	fail "'$*' exits $CODE, want $want"
	printf '%s\n' "$OUT" | tail -n 60 | indent
	return 1
}

# expect_contains TEXT NEEDLE [WHAT]: pass when TEXT contains NEEDLE (fixed string).
expect_contains() {
	local what=${3:-output contains \'$2\'}
	if [[ "$1" == *"$2"* ]]; then
		pass "$what"
		return 0
	fi
	fail "$what: '$2' not found in:"
	printf '%s\n' "$1" | tail -n 60 | indent
	return 1
}

# expect_not_contains TEXT NEEDLE [WHAT]
expect_not_contains() {
	local what=${3:-output does not contain \'$2\'}
	if [[ "$1" != *"$2"* ]]; then
		pass "$what"
		return 0
	fi
	fail "$what: '$2' found in:"
	printf '%s\n' "$1" | tail -n 60 | indent
	return 1
}

# expect_match TEXT ERE [WHAT]: pass when a line of TEXT matches the extended regexp.
expect_match() {
	local what=${3:-output matches /$2/}
	if printf '%s\n' "$1" | grep -Eq -- "$2"; then
		pass "$what"
		return 0
	fi
	fail "$what: no line matches /$2/ in:"
	printf '%s\n' "$1" | tail -n 60 | indent
	return 1
}

# expect_eq GOT WANT WHAT
expect_eq() {
	if [[ "$1" == "$2" ]]; then
		pass "$3"
		return 0
	fi
	fail "$3: got '$1', want '$2'"
	return 1
}

# expect_ne GOT NOTWANT WHAT
expect_ne() {
	if [[ "$1" != "$2" ]]; then
		pass "$3"
		return 0
	fi
	fail "$3: got '$1' both times"
	return 1
}

# check WHAT CMD...: pass when CMD exits 0 (its output shown on failure).
check() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then
		pass "$what"
		return 0
	fi
	fail "$what ('$*' failed)"
	printf '%s\n' "$out" | tail -n 30 | indent
	return 1
}

# check_not WHAT CMD...: pass when CMD fails.
check_not() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then
		fail "$what ('$*' succeeded)"
		printf '%s\n' "$out" | tail -n 30 | indent
		return 1
	fi
	pass "$what"
}

# need WHAT CMD...: a precondition; when it fails the scenario stops (FAIL).
need() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then
		return 0
	fi
	fail "precondition: $what ('$*' failed); scenario stopped"
	printf '%s\n' "$out" | tail -n 40 | indent
	exit 1
}

dw() { "$DOCKWARD" "$@"; }

# converge: bring the host to the desired state first (apply exits 0 or 2).
# shellcheck disable=SC2016 # $0 is expanded by the inner bash
converge() { need "dockward apply converges the host" bash -c '"$0" apply; c=$?; [ $c = 0 ] || [ $c = 2 ]' "$DOCKWARD"; }

# invocation_id: docker.service's current InvocationID (changes on every start).
invocation_id() { systemctl show -p InvocationID --value docker.service; }

# journal_cursor: the journal position now, for reading dockward's own log
# lines written after it (60-agent). Never used to count systemd's doings:
# systemd words its messages differently from one version to the next.
journal_cursor() { journalctl -q -n 1 --show-cursor -o cat 2>/dev/null | sed -n 's/^-- cursor: //p'; }

# Counting docker.service's starts without reading the journal. systemd
# keeps no start counter (NRestarts counts only its own automatic
# restarts), so run.sh gives the unit a runtime drop-in (under /run, gone at
# reboot) whose ExecStartPre appends the unit's InvocationID to
# $DW_DOCKER_STARTS on every start attempt: a trace of the InvocationID
# property, written by systemd's own process of each start.
DW_DOCKER_STARTS=${DW_DOCKER_STARTS:-/run/dockward-scenarios/docker-starts}
DW_DOCKER_DROPIN=/run/systemd/system/docker.service.d/90-dockward-scenarios-starts.conf

# count_docker_starts: install the drop-in (run.sh does, once per run).
count_docker_starts() {
	mkdir -p "${DW_DOCKER_STARTS%/*}" "${DW_DOCKER_DROPIN%/*}" || return 1
	: >>"$DW_DOCKER_STARTS"
	printf '%s\n' '# dockward acceptance scenarios: one line per start of docker.service (its InvocationID)' \
		'[Service]' \
		"ExecStartPre=-/bin/sh -c 'echo \"\$\$INVOCATION_ID\" >>$DW_DOCKER_STARTS'" >"$DW_DOCKER_DROPIN" &&
		systemctl daemon-reload &&
		systemctl show -p ExecStartPre docker.service | grep -q "$DW_DOCKER_STARTS"
}

# uncount_docker_starts: remove the drop-in and the trace.
uncount_docker_starts() {
	rm -f "$DW_DOCKER_DROPIN" "$DW_DOCKER_STARTS"
	systemctl daemon-reload
}

# docker_starts_mark: the position in the trace now, for docker_starts_since.
docker_starts_mark() { wc -l <"$DW_DOCKER_STARTS" 2>/dev/null || echo 0; }

# docker_starts_since MARK: how many times docker.service was started after
# MARK. When it was, the last start recorded must be the running
# invocation (InvocationID): otherwise the trace is not to be trusted, and
# the answer says so (an assertion comparing it to a number then fails).
docker_starts_since() {
	local n last
	if [[ ! -e $DW_DOCKER_DROPIN || ! -e $DW_DOCKER_STARTS ]]; then
		echo "unknown (no start trace: run.sh installs it with count_docker_starts)"
		return
	fi
	n=$(($(docker_starts_mark) - $1))
	if ((n > 0)); then
		last=$(tail -n 1 "$DW_DOCKER_STARTS")
		if [[ $last != "$(invocation_id)" ]]; then
			echo "$n (untrustworthy: the last recorded start, $last, is not the running InvocationID $(invocation_id))"
			return
		fi
	fi
	echo "$n"
}

# wait_for SECONDS WHAT CMD...: poll CMD until it succeeds, bounded.
wait_for() {
	local secs=$1 what=$2 end
	shift 2
	end=$((SECONDS + secs))
	while ((SECONDS < end)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	"$@" >/dev/null 2>&1 && return 0
	# Not a failure by itself (the assertions that follow say what it
	# means), but said: a section whose wait ran out fails later in ways
	# that are hard to read without it.
	note "(waited ${secs}s for $what: it did not happen)"
	return 1
}

wait_docker_active() { wait_for "${1:-90}" "docker.service active" systemctl is-active --quiet docker.service; }

# checksums FILE...: one line per file, "missing" for an absent one.
checksums() {
	local f
	for f in "$@"; do
		if [[ -e "$f" ]]; then sha256sum "$f"; else echo "missing $f"; fi
	done
}

# ensure_busybox: make busybox:local from the host's busybox-static when the
# current Docker data root lacks it (userns-remap switches data roots).
# Keep in step with sandbox.BusyboxScript.
ensure_busybox() {
	docker image inspect busybox:local >/dev/null 2>&1 && return 0
	local d
	d=$(mktemp -d)
	mkdir -p "$d/bin" "$d/tmp" "$d/etc"
	cp /bin/busybox "$d/bin/busybox"
	local a
	for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$d/bin/$a"; done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$d/etc/passwd"
	echo 'root:x:0:' >"$d/etc/group"
	tar -C "$d" -c . | docker import -c 'CMD ["sh"]' -c 'ENV PATH=/bin' - busybox:local >/dev/null
	local rc=$?
	rm -rf "$d"
	return $rc
}

# set_json_string FILE KEY VALUE: replace the string value of KEY wherever it
# appears in FILE ("max-size": "10m" -> "99m"), as an operator's editor would.
set_json_string() {
	sed -E -i "s/(\"$2\"[[:space:]]*:[[:space:]]*)\"[^\"]*\"/\1\"$3\"/" "$1"
}

# install_agent_unit HERE: make dockward.service runnable where dockward is
# not installed from the package (the sandbox machines): dist/dockward.service
# from the tree (found from HERE, run.sh's directory) and the binary at
# /usr/bin/dockward, as the unit expects. What it put in place is appended
# to the caller's `added` array, for its cleanup to remove.
install_agent_unit() {
	local here=$1 dist='' d
	if ! systemctl cat dockward.service >/dev/null 2>&1; then
		for d in "$here/dist" "$here/../../dist"; do [[ -f $d/dockward.service ]] && dist=$d && break; done
		need "dist/dockward.service to install" test -n "$dist"
		install -m 0644 "$dist/dockward.service" /etc/systemd/system/dockward.service
		added+=(/etc/systemd/system/dockward.service)
		systemctl daemon-reload
	fi
	if [[ ! -x /usr/bin/dockward ]]; then
		install -m 0755 "$(command -v "$DOCKWARD")" /usr/bin/dockward
		added+=(/usr/bin/dockward)
	fi
}

# For the resident agent's scenarios (60, 61).

# cursor is the journal position agent_log and wait_log read from; a
# scenario sets it (journal_cursor) before what it then looks for.
cursor=

# agent_log: the agent's journal since $cursor.
agent_log() { journalctl -q --no-pager -o cat -u dockward.service --after-cursor="$cursor" 2>/dev/null; }
# wait_log SECS TEXT: poll the agent's journal since $cursor for TEXT.
wait_log() { wait_for "$1" "journal: $2" bash -c 'journalctl -q --no-pager -o cat -u dockward.service --after-cursor="$0" | grep -qF -- "$1"' "$cursor" "$2"; }
# show PROPERTY: a property of dockward.service.
show() { systemctl show -p "$1" --value dockward.service; }

# agent_cleanup CONF BACKUP: stop the agent, put the operator's
# configuration CONF back from BACKUP (or remove CONF when there was none),
# remove the files in the scenario's `added`, and leave the host
# converged, as the next scenario expects (docker's start limit may be
# spent: a scenario that restarts docker often resets it).
agent_cleanup() {
	local conf=$1 backup=$2 f
	systemctl stop dockward.service 2>/dev/null
	if [[ -n $backup ]]; then mv -f "$backup" "$conf"; else rm -f "$conf"; fi
	for f in "${added[@]}"; do rm -f "$f"; done
	systemctl daemon-reload
	systemctl reset-failed dockward.service docker.service 2>/dev/null
	"$DOCKWARD" apply >/dev/null 2>&1
	wait_docker_active 90
}
