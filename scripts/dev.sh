#!/bin/sh
# Runs a justfile recipe (demo, test, ...) on a machine that has only python3 and pip.
# Installs the two tools the project is driven by, uv and just, from PyPI into the
# user's site when they are missing, saying so; uv then provides everything else.
set -eu
cd "$(dirname "$0")/.."

say() { printf 'dev.sh: %s\n' "$*" >&2; }

user_bin="$(python3 -m site --user-base 2>/dev/null || echo "$HOME/.local")/bin"
case ":$PATH:" in
    *":$user_bin:"*) bin_on_path=yes ;;
    *) bin_on_path=no ;;
esac
export PATH="$user_bin:$PATH"

# pip's error output, shown in full when it matters.
show() { sed 's/^/    pip: /' "$1" >&2; }

packages=""
if ! command -v uv >/dev/null 2>&1; then
    say "installing uv into $user_bin (pip install --user uv): it creates the virtualenvs and installs the project from uv.lock"
    packages="uv"
fi
if ! command -v just >/dev/null 2>&1; then
    say "installing just into $user_bin (pip install --user rust-just): it runs the justfile's recipes"
    packages="$packages rust-just"
fi
if [ -n "$packages" ]; then
    first=$(mktemp)
    second=$(mktemp)
    trap 'rm -f "$first" "$second"' EXIT
    # shellcheck disable=SC2086
    if python3 -m pip install --user --quiet $packages 2>"$first"; then
        :
    elif grep -q "externally-managed-environment" "$first"; then
        say "pip refused: this python3 is externally managed (PEP 668), so it will not install into the user site by default."
        say "retrying with --break-system-packages: it still writes only to $(dirname "$user_bin"), not to the system's packages"
        # shellcheck disable=SC2086
        if ! python3 -m pip install --user --quiet --break-system-packages $packages 2>"$second"; then
            say "the retry failed too; pip said:"
            show "$second"
            exit 1
        fi
    else
        say "pip install --user$packages failed; pip said:"
        show "$first"
        say "(no pip? on Debian: apt-get install python3-pip; or install uv and just yourself)"
        exit 1
    fi
fi

status=0
just "$@" || status=$?
in_user_bin=""
for tool in uv just; do
    if [ "$(command -v "$tool")" = "$user_bin/$tool" ]; then
        in_user_bin="${in_user_bin:+$in_user_bin and }$tool"
    fi
done
if [ "$bin_on_path" = no ] && [ -n "$in_user_bin" ]; then
    say "$in_user_bin: in $user_bin, which is not on your PATH; to run them yourself (just --list):"
    say "    export PATH=\"$user_bin:\$PATH\"    (add that line to ~/.profile to keep it)"
fi
exit "$status"
