#!/bin/sh
# Runs a justfile recipe (demo, test, ...) on a machine that has only python3 and pip.
# Installs the two tools the project is driven by, uv and just, from PyPI into the
# user's site when they are missing; uv then provides everything else.
set -eu
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1 || ! command -v just >/dev/null 2>&1; then
    python3 -m pip install --user --quiet uv rust-just 2>/dev/null \
        || python3 -m pip install --user --quiet --break-system-packages uv rust-just
fi
exec just "$@"
