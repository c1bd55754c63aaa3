#!/bin/sh
# Enable first-boot provisioning for images; the operator chooses between
# the resident agent (dockward.service) and the timer (dockward-apply.timer).
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
if command -v systemctl >/dev/null 2>&1; then
  systemctl enable dockward-firstboot.service >/dev/null 2>&1 || true
fi
# An upgrade ("configure" with the old version) restarts a running agent,
# as Debian packages usually do: the old binary would run on until the next
# boot, and its reloads would not wait (dockward reload waits for the agent
# to report in /run/dockward/reload.json, which an older agent does not
# write). Stopping is prompt: an owed docker restart stays in the journal.
if [ "$1" = configure ] && [ -n "$2" ] && [ -d /run/systemd/system ]; then
  systemctl try-restart dockward.service >/dev/null 2>&1 || true
fi
exit 0
