# Tasks for taquba-memo. `sh scripts/dev.sh RECIPE` runs any of them on a bare machine.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Never download a Python: use the machine's python3.
export UV_PYTHON_DOWNLOADS := "never"

default:
    @just --list

# Install every workspace package and the dev tools into .venv, exactly as locked.
sync:
    uv sync --all-packages --frozen

# The demo: an at-least-once agent step that crashes and retries, on local files. Runs in
# .venv-demo, which holds the core alone (no dev tools, no adapter SDKs; the core has no deps).
demo:
    UV_PROJECT_ENVIRONMENT=.venv-demo uv run --frozen --exact --package taquba-memo --no-dev python -m taquba_memo.demo

# Lint and format check.
lint: sync
    uv run --frozen ruff check .
    uv run --frozen ruff format --check .

# mypy --strict over every package and the tests.
typecheck: sync
    uv run --frozen mypy

# Debian packages of the local test servers (COMMAND=PACKAGES), installed when missing and root.
system_packages := "redis-server=redis-server radosgw=ceph-mon,ceph-osd,radosgw,ceph-common"

# Install the Debian packages the local test servers need (root only; otherwise says what).
system-deps:
    sh scripts/system_packages.sh {{system_packages}}

# Everything CI runs: lint, types, the whole test suite against local servers, then the core's
# and the packages' server-free tests on every other Python they claim that the machine has.
test: lint typecheck system-deps
    uv run --frozen pytest -n 2 --durations=25
    uv run --frozen python scripts/other_pythons.py

# Reformat and autofix.
fmt: sync
    uv run --frozen ruff format .
    uv run --frozen ruff check --fix .

# Not CI: start a private Docker engine (installs Debian's docker.io when missing), import a
# local fake-gcs-server image, and run the GCS tests with gcs_server going through testcontainers.
containers-gcs *ARGS: sync
    bash scripts/containers_gcs.sh {{ARGS}}

# Requests per operation, time against the raw SDKs and the reference clear, and marker
# memory, on local moto, fake-gcs-server and Azurite; then the sweeps side by side on moto
# and Ceph RGW (benchmarks/sweep_compare.py) and the cost model. Writes BENCHMARKS.md
# (tables) and benchmarks/*.json. Not CI: 30-40 min for the first part on 2 shared cores
# (`--quick`: 3 min); the sweep comparison 15 min on RGW and over an hour on moto, whose
# listings slow down as the bucket grows (`python -m benchmarks.sweep_compare --help`).
# `just bench --only rgw`: both S3 adapters on Ceph RGW, merged into the last run;
# `--skip-timings`: request counts only.
bench *ARGS: sync
    uv run --frozen python -m benchmarks {{ARGS}}
    uv run --frozen python -m benchmarks.sweep_compare
    uv run --frozen python -m benchmarks.cost_model

# Requests and dollars a month at 10^4, 10^6 and 10^8 runs a day (BENCHMARKS.md, cost_model.png).
cost-model: sync
    uv run --frozen python -m benchmarks.cost_model

# Not in `test`: the fault profile with 60 keys an adapter and every fault on every operation,
# 120 rounds of killed writers, 30 scenarios of killed sweeps, five times the hostile inputs;
# figures go to .reliability/soak/ (render them with `just reliability`).
# About 17 min on 2 cores.
soak: sync
    TAQUBA_MEMO_SOAK=1 TAQUBA_MEMO_RELIABILITY_DIR=.reliability/soak uv run --frozen pytest tests/faults tests/crash tests/hostile

# Render the figures the last `just test` and `just soak` runs wrote into RELIABILITY.md.
reliability:
    uv run --frozen python scripts/reliability_report.py --write
    -uv run --frozen python scripts/reliability_report.py --soak --write
