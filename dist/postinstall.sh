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
exit 0
