#!/bin/sh
# version.sh [DIR]: dockward's version for the binary and the .deb, from the
# git checkout DIR (default: this one), in a form dpkg --compare-versions
# sorts in commit order:
#
#   tag v0.2.0 on HEAD, clean work tree   0.2.0
#   commits after v0.2.0                  0.2.0+git20261202013000.58b4e86
#   no v* tag yet                         0.0.0~git20261202013000.58b4e86
#   uncommitted changes                   the untagged form, then .dirty
#
# The date is the commit's (UTC), so a later commit sorts after an earlier
# one whatever their hashes; "+" sorts after the tag it follows and before the
# next one, "~" before everything, and a tag's "-rc1" becomes "~rc1" so that
# it sorts before the release. Outside a git checkout: 0.0.0~dev.
set -eu
cd "${1:-$(dirname "$0")/..}"

if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
	echo 0.0.0~dev
	exit 0
fi

hash=$(git rev-parse --short=7 HEAD)
date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD)
dirty=
git update-index -q --refresh >/dev/null 2>&1 || true
git diff-index --quiet HEAD -- || dirty=.dirty

if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD 2>/dev/null); then
	base=$(echo "${tag#v}" | tr - '~')
	if [ -z "$dirty" ] && [ "$(git rev-list -n 1 "$tag")" = "$(git rev-parse HEAD)" ]; then
		echo "$base"
	else
		echo "$base+git$date.$hash$dirty"
	fi
else
	echo "0.0.0~git$date.$hash$dirty"
fi
