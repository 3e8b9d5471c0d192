#!/usr/bin/env bash
# Shows the conformance kit's container path working on a machine without an image registry:
# starts a private Docker engine, builds a local fake-gcs-server image with `docker import`,
# runs the GCS tests with the gcs_server fixture going through testcontainers, then stops the
# engine. Needs root (it may install Debian's docker.io). Not part of `just test` or CI.
#
# Usage: sh scripts/dev.sh containers-gcs   (or: bash scripts/containers_gcs.sh [pytest args])
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="taquba-memo/fake-gcs-server:1.54.0"
STARTUP_WAIT_SECONDS=60

if [ "$(id -u)" != 0 ]; then
    echo "containers-gcs: needs root to install docker.io and run dockerd" >&2
    exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "== installing Debian's docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
# The client that comes with the engine (another `docker` earlier on PATH may be newer).
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)

WORK=$(mktemp -d /tmp/taquba-memo-docker.XXXXXX)
SOCKET="$WORK/docker.sock"
DOCKERD_PID=""

stop_engine() {
    status=$?
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        echo "== stopping dockerd (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID"
        for _ in $(seq 1 30); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 1
        done
        kill -KILL "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -f "$WORK/dockerd.log" ]; then
        echo "== last lines of dockerd's log" >&2
        tail -n 30 "$WORK/dockerd.log" >&2
    fi
    # The engine leaves its network namespace handle (an nsfs mount under exec-root) mounted.
    awk -v root="$WORK/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r mountpoint; do umount "$mountpoint" || true; done
    rm -rf "$WORK" 2>/dev/null || echo "containers-gcs: left $WORK behind" >&2
    exit "$status"
}
trap stop_engine EXIT

# No bridge and no iptables: this machine's kernel sandbox allows neither, so containers
# share the host network and each server binds 127.0.0.1 itself.
echo "== starting $(dockerd --version)"
dockerd \
    --data-root "$WORK/data" \
    --exec-root "$WORK/exec" \
    --pidfile "$WORK/dockerd.pid" \
    -H "unix://$SOCKET" \
    --bridge=none --iptables=false --ip6tables=false \
    >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
export DOCKER_HOST="unix://$SOCKET"

started=$(date +%s)
until "$DOCKER" info >/dev/null 2>&1; do
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
        echo "containers-gcs: dockerd exited" >&2
        exit 1
    fi
    if [ $(($(date +%s) - started)) -ge "$STARTUP_WAIT_SECONDS" ]; then
        echo "containers-gcs: dockerd did not answer within ${STARTUP_WAIT_SECONDS}s" >&2
        exit 1
    fi
    sleep 0.5
done
echo "== engine answers: $("$DOCKER" version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}')"

# A root filesystem holding nothing but fake-gcs-server's static binary, as a local image.
BINARY=$(uv run --frozen python -c \
    'from taquba_memo_conformance.servers import fake_gcs_server_binary; print(fake_gcs_server_binary())')
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/tmp"
cp "$BINARY" "$WORK/rootfs/bin/fake-gcs-server"
chmod 0755 "$WORK/rootfs/bin/fake-gcs-server"
chmod 1777 "$WORK/rootfs/tmp"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
echo "== docker import $(du -h "$WORK/rootfs.tar" | cut -f1) rootfs as $IMAGE"
"$DOCKER" import --change 'ENTRYPOINT ["/bin/fake-gcs-server"]' "$WORK/rootfs.tar" "$IMAGE" >/dev/null
"$DOCKER" image ls "$IMAGE"

# The fixture must take the container path (no silent fall back to a process), without
# Ryuk (its image cannot be pulled here; the fixture removes its containers itself).
export TAQUBA_MEMO_SERVERS=container
export TAQUBA_MEMO_GCS_IMAGE="$IMAGE"
export TESTCONTAINERS_RYUK_DISABLED=true
unset TAQUBA_MEMO_GCS_ENDPOINT
TESTS=(tests/conformance_kit/test_servers_containers.py)
# The GCS adapter's own tests and its conformance run, when present, on the same fixture.
[ -d tests/adapters/gcs ] && TESTS+=(tests/adapters/gcs)
echo "== pytest ${TESTS[*]} (TAQUBA_MEMO_SERVERS=container)"
set +e
uv run --frozen pytest -p no:cacheprovider -q -rA "${TESTS[@]}" "$@"
tests_status=$?
set -e
echo "== containers left after the tests: $("$DOCKER" ps -aq | wc -l)"
exit "$tests_status"
