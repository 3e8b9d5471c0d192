#!/bin/sh
# Installs the Debian packages that the test servers need, when they are missing.
#
# Each argument is COMMAND=PACKAGES: when COMMAND is not on PATH, PACKAGES (comma
# separated) are installed with apt-get. Runs only as root on a machine with apt-get;
# elsewhere it prints what to install and returns 0, and the tests that need the
# server skip with that reason (CI sets TAQUBA_MEMO_REQUIRE_SERVERS=1 so they fail).
set -eu
missing=""
for spec in "$@"; do
    cmd=${spec%%=*}
    pkgs=$(printf '%s' "${spec#*=}" | tr ',' ' ')
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/bin/$cmd" ] && [ ! -x "/usr/sbin/$cmd" ]; then
        echo "system_packages: $cmd (a local test server) is not installed: Debian package(s) $pkgs"
        missing="$missing $pkgs"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system_packages: not root or no apt-get; install these Debian packages for the full suite:$missing" >&2
    exit 0
fi
echo "system_packages: installing with apt-get (once; later runs find them):$missing"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! apt-get update -qq >"$log" 2>&1; then
    echo "system_packages: apt-get update failed:" >&2
    cat "$log" >&2
    exit 1
fi
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $missing >"$log" 2>&1; then
    echo "system_packages: apt-get install failed:" >&2
    cat "$log" >&2
    exit 1
fi
# apt-get's own size summary: download and disk space.
grep -E '^(Need to get|After this operation)' "$log" | sed 's/^/system_packages: /' || true
