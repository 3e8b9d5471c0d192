"""Hot paths, before and after a change, side by side: each figure a ratio to its floor.

Run it with ``uv run python -m benchmarks.hot_paths --before <src>``, where
``<src>`` is the ``src`` directory of another checkout of taquba-memo (for
example ``git archive <base> packages/taquba-memo/src | tar -x -C /tmp/base``).
Without ``--before`` only this checkout is measured. Each side runs in its own
interpreter (``PYTHONPATH`` chooses the code), round by round in rotating
order so load on the machine falls on both alike; each figure is the median
over rounds of a ratio measured inside one process:

- ``get_or_compute hit``: a hit on InMemoryBackend against ``Memo.get`` of the same entry;
- ``import`` and ``--help``: ``import taquba_memo`` and ``python -m taquba_memo --help``
  against ``python -c pass`` (wall time of the process; ``--startup-only`` measures only these);
- ``durable put``: ``LocalFileBackend.put`` against a raw atomic write (staging file,
  fsync, rename, fsync of the directory) in the same directory;
- ``list``: ``LocalFileBackend.list`` of ``--runs`` runs against a same-thread
  ``os.scandir`` walk in the same order;
- ``clear``: CPU of ``delete_many`` of those runs' keys against ``rm -rf`` of a copy
  (what a sweep of those runs deletes with);
- ``sync get`` and ``sync hit``: a sync ``Memo.get`` and a sync ``get_or_compute`` hit of a
  256-byte entry on local files against ``open(path, "rb").read()`` of the entry's file;
- ``put file syscalls``: the file-system calls (opens, stats, mkdirs, unlinks, renames,
  links, fsyncs) of 20 durable puts over those of 20 raw atomic writes, counted by
  ``strace`` (skipped without it);
- ``runs --summary-only``: ``taquba-memo --summary-only runs`` on ``--cli-runs`` runs of
  local files against ``find <store> | wc -l``, wall time; and how its peak RSS grows, in
  bytes a run, from a tenth of those runs to all of them, beside ``find``'s growth (which
  reads the same directories) and that of ``runs`` without ``--summary-only``; once with
  no terminal markers and once with a marker a run (whose run ids it holds).

It prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "packages" / "taquba-memo" / "src"
CASES = ("get_or_compute hit", "durable put", "list", "clear", "sync get", "sync hit")
CLI_CASES = (
    "runs --summary-only",
    "summary RSS growth",
    "find RSS growth",
    "summary RSS growth, markers",
    "runs RSS growth",
    "summary RSS MiB",
)


async def _per_call(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - started) / calls


async def hit_ratio() -> float:
    from taquba_memo import InMemoryBackend, MemoStore

    memo = MemoStore(InMemoryBackend(), "bench").new_memo("run", 0)
    await memo.put("k", b"value")
    gets, hits = [], []
    for _ in range(15):
        gets.append(await _per_call(lambda: memo.get("k"), 300))
        hits.append(await _per_call(lambda: memo.get_or_compute("k", bytes), 300))
    return statistics.median(hits) / statistics.median(gets)


def _raw_atomic_write(directory: str, name: str, data: bytes) -> None:
    staging = os.path.join(directory, name + "#1")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(staging, os.path.join(directory, name))
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def put_ratio(root: Path) -> float:
    from taquba_memo import LocalFileBackend

    backend = LocalFileBackend(root / "store")
    await backend.put("run/step/k", b"x")
    raw_dir = root / "raw"
    raw_dir.mkdir()
    value = b"x" * 256
    raws, puts = [], []
    for _ in range(9):
        started = time.perf_counter()
        for index in range(20):
            await asyncio.to_thread(_raw_atomic_write, str(raw_dir), f"k{index}", value)
        raws.append(time.perf_counter() - started)
        started = time.perf_counter()
        for index in range(20):
            await backend.put(f"run/step/k{index}", value)
        puts.append(time.perf_counter() - started)
    return statistics.median(puts) / statistics.median(raws)


def _scandir_walk(path: str, out: list[str]) -> None:
    entries = sorted(os.scandir(path), key=lambda e: e.name + "/" if e.is_dir() else e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            _scandir_walk(entry.path, out)
        else:
            out.append(entry.path)


def _make_runs(root: Path, runs: int) -> list[str]:
    keys = [
        f"p/memos/r{run:06d}/{step}/k{index}"
        for run in range(runs)
        for step in range(2)
        for index in range(3)
    ]
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"v")
    return keys


def _rm_rf_cpu(tree: Path, copy: Path) -> float:
    """CPU seconds ``rm -rf`` spends on a copy of ``tree``."""
    shutil.copytree(tree, copy)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["rm", "-rf", str(copy)], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def list_and_clear_ratios(root: Path, runs: int) -> tuple[float, float]:
    from taquba_memo import LocalFileBackend

    tree = root / "tree"
    keys = _make_runs(tree, runs)
    backend = LocalFileBackend(tree)
    walks, lists = [], []
    for _ in range(3):
        started = time.perf_counter()
        _scandir_walk(str(tree / "p"), [])
        walks.append(time.perf_counter() - started)
        started = time.perf_counter()
        listed = [key async for key in backend.list("p/")]
        lists.append(time.perf_counter() - started)
    assert len(listed) == len(keys)
    rm_cpu = _rm_rf_cpu(tree, root / "copy")
    started = time.process_time()
    for start in range(0, len(keys), 1000):
        await backend.delete_many(keys[start : start + 1000])
    clear_cpu = time.process_time() - started
    return statistics.median(lists) / statistics.median(walks), clear_cpu / max(rm_cpu, 1e-3)


def _per_call_sync(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def sync_read_ratios(root: Path) -> tuple[float, float]:
    """A sync get and a sync get_or_compute hit on local files, each over a plain read."""
    from taquba_memo import LocalFileBackend
    from taquba_memo.sync import MemoStore

    with MemoStore(LocalFileBackend(root / "sync"), "bench") as store:
        memo = store.new_memo("run", 0)
        memo.put("k", b"x" * 256)
        path = next(found for found in (root / "sync").rglob("*") if found.is_file())

        def plain() -> bytes:
            with open(path, "rb") as file:
                return file.read()

        reads, gets, hits = [], [], []
        for _ in range(15):
            reads.append(_per_call_sync(plain, 300))
            gets.append(_per_call_sync(lambda: memo.get("k"), 300))
            hits.append(_per_call_sync(lambda: memo.get_or_compute("k", bytes), 300))
    read = statistics.median(reads)
    return statistics.median(gets) / read, statistics.median(hits) / read


async def child(runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        listing, clear = await list_and_clear_ratios(root, runs)
        sync_get, sync_hit = await asyncio.to_thread(sync_read_ratios, root)
        return {
            "get_or_compute hit": await hit_ratio(),
            "durable put": await put_ratio(root),
            "list": listing,
            "clear": clear,
            "sync get": sync_get,
            "sync hit": sync_hit,
        }


# -- system calls of a put (strace) -------------------------------------------------------

_PUTS = """
import asyncio, os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[1]))))
from benchmarks.hot_paths import _raw_atomic_write
from taquba_memo import LocalFileBackend

async def main(root):
    backend = LocalFileBackend(os.path.join(root, "store"))
    await backend.put("run/step/seed", b"x")
    os.makedirs(os.path.join(root, "raw"))
    for marker, write in (("raw", None), ("put", backend)):
        try:
            os.stat(f"/hot-paths-begin-{marker}")
        except FileNotFoundError:
            pass
        for index in range(20):
            if write is None:
                _raw_atomic_write(os.path.join(root, "raw"), f"k{index}", b"v" * 256)
            else:
                await write.put(f"run/step/k{index}", b"v" * 256)
        try:
            os.stat(f"/hot-paths-end-{marker}")
        except FileNotFoundError:
            pass

asyncio.run(main(sys.argv[2]))
"""

_FILE_CALLS = (
    "open,openat,openat2,mkdir,mkdirat,stat,lstat,newfstatat,statx,unlink,unlinkat,"
    "rename,renameat,renameat2,link,linkat,fsync,fdatasync"
)


def put_syscalls(src: str) -> tuple[int, int] | None:
    """The file-system calls of 20 puts and of 20 raw atomic writes; None without strace."""
    if shutil.which("strace") is None:
        return None
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "strace.log"
        strace = ["strace", "-f", "-qq", "-o", str(log), "-e", f"trace={_FILE_CALLS}"]
        subprocess.run(
            [*strace, sys.executable, "-c", _PUTS, __file__, directory],
            env={**os.environ, "PYTHONPATH": src},
            check=True,
        )
        counts = {"raw": 0, "put": 0}
        inside: str | None = None
        for line in log.read_text().splitlines():
            for marker in counts:
                if f"/hot-paths-begin-{marker}" in line:
                    inside = marker
                elif f"/hot-paths-end-{marker}" in line:
                    inside = None
            if inside is not None and "/hot-paths-begin-" not in line:
                counts[inside] += 1
    return counts["put"], counts["raw"]


# -- runs --summary-only on many runs ---------------------------------------------------

# A child's peak RSS: GNU time's child starts as a copy of that small program, so a
# small peak is not lost under the copy of a Python interpreter (a fork's child
# counts its pre-exec memory); without it, a Python parent's rusage, whose floor is
# that interpreter's size.
_PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss(argv: Sequence[str], env: dict[str, str]) -> float:
    """The peak RSS of running ``argv``, in bytes."""
    gnu_time = shutil.which("time")
    if gnu_time is None:
        wrapped = [sys.executable, "-c", _PEAK_RSS, *argv]
        done = subprocess.run(wrapped, env=env, check=True, capture_output=True, text=True)
        return float(done.stdout.strip()) * 1024
    with tempfile.NamedTemporaryFile("r") as report:
        wrapped = [gnu_time, "-f", "%M", "-o", report.name, *argv]
        subprocess.run(wrapped, env=env, check=True, capture_output=True)
        return float(report.read().strip()) * 1024  # %M is in KiB


def make_cli_store(root: Path, runs: int, markers: bool) -> None:
    """``runs`` runs of one entry each, named as the layout names them; a terminal marker
    each if ``markers``."""
    sys.path.insert(0, str(HERE))
    from taquba_memo import _layout as layout

    for run in range(runs):
        path = root / layout.memo_key("p", f"r{run:06d}", 0, "k")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"v")
        if markers:
            path = root / layout.terminal_marker_key("p", f"r{run:06d}", 1_000 + run)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")


def make_cli_stores(root: Path, runs: int) -> dict[tuple[int, bool], Path]:
    """Stores of a tenth of ``runs`` and of ``runs``, each without and with markers."""
    stores = {}
    for count in (runs // 10, runs):
        for markers in (False, True):
            store = root / f"{count}-{'markers' if markers else 'entries'}"
            make_cli_store(store, count, markers)
            stores[count, markers] = store
    return stores


def cli_figures(stores: dict[tuple[int, bool], Path], src: str) -> dict[str, float]:
    """Wall time of ``runs --summary-only`` over ``find | wc -l``; peak RSS growth a run."""
    env = {**os.environ, "PYTHONPATH": src}

    def command(store: Path) -> list[str]:
        return [sys.executable, "-m", "taquba_memo", "--url", store.as_uri(), "--prefix", "p"]

    small, large = sorted({count for count, _markers in stores})
    store = stores[large, False]
    started = time.perf_counter()
    subprocess.run(f"find {store} | wc -l", shell=True, check=True, stdout=subprocess.DEVNULL)
    find = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([*command(store), "--summary-only", "runs"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    summary = time.perf_counter() - started

    def peak(*argv: str) -> float:
        return peak_rss(argv, env)

    def growth(argv: Callable[[Path], list[str]], markers: bool = False) -> float:
        grown = peak(*argv(stores[large, markers])) - peak(*argv(stores[small, markers]))
        return grown / (large - small)

    return {
        "runs --summary-only": summary / find,
        "summary RSS growth": growth(lambda store: [*command(store), "--summary-only", "runs"]),
        "find RSS growth": growth(lambda store: ["find", str(store)]),
        "summary RSS growth, markers": growth(
            lambda store: [*command(store), "--summary-only", "runs"], markers=True
        ),
        "runs RSS growth": growth(lambda store: [*command(store), "runs"]),
        "summary RSS MiB": peak(*command(store), "--summary-only", "runs") / 2**20,
    }


def _syscall_cell(counts: tuple[int, int] | None) -> str:
    return "no strace" if counts is None else f"{counts[0]} vs {counts[1]}"


def _timed(src: str, *argv: str) -> float:
    env = {**os.environ, "PYTHONPATH": src}
    started = time.perf_counter()
    subprocess.run([sys.executable, *argv], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def startup_ratios(src: str) -> dict[str, float]:
    """Wall time of ``import taquba_memo`` and of the CLI's ``--help`` over ``python -c pass``."""
    floor = _timed(src, "-c", "pass")
    return {
        "import": _timed(src, "-c", "import taquba_memo") / floor,
        "--help": _timed(src, "-m", "taquba_memo", "--help") / floor,
    }


def child_figures(src: str, runs: int) -> dict[str, float]:
    """The in-process ratios (``CASES``), measured by a child interpreter running ``src``."""
    found = subprocess.run(
        [sys.executable, "-m", "benchmarks.hot_paths", "--child", "--runs", str(runs)],
        env={**os.environ, "PYTHONPATH": src},
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(found.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the src directory of the code to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cli-runs", type=int, default=50_000)
    parser.add_argument(
        "--startup-only", action="store_true", help="measure only the import and --help rows"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.runs))))
        return
    sides = (
        {"after": str(HERE)} if args.before is None else {"before": args.before, "after": str(HERE)}
    )
    ratios: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
    names = list(sides)
    syscalls = {} if args.startup_only else {side: put_syscalls(src) for side, src in sides.items()}
    cli_store = tempfile.TemporaryDirectory()
    stores = {} if args.startup_only else make_cli_stores(Path(cli_store.name), args.cli_runs)
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for side in names[shift:] + names[:shift]:
            figures = startup_ratios(sides[side])
            if not args.startup_only:
                figures |= child_figures(sides[side], args.runs)
                figures |= cli_figures(stores, sides[side])
            for case, ratio in figures.items():
                ratios[side].setdefault(case, []).append(ratio)
    print("| path | floor | " + " | ".join(f"{side} (x floor)" for side in names) + " |")
    print("|---|---|" + "---|" * len(names))
    floors = {
        "get_or_compute hit": "Memo.get",
        "import": "python -c pass",
        "--help": "python -c pass",
        "durable put": "raw atomic write",
        "list": "same-thread scandir walk",
        "clear": "rm -rf CPU",
        "sync get": "open().read()",
        "sync hit": "open().read()",
        "runs --summary-only": f"find \\| wc -l ({args.cli_runs:,} runs)",
        "summary RSS growth": f"(bytes a run, {args.cli_runs // 10:,} to {args.cli_runs:,} runs)",
        "find RSS growth": "(bytes a run, the same stores)",
        "summary RSS growth, markers": "(bytes a run, a terminal marker each)",
        "runs RSS growth": "(bytes a run, every run listed)",
        "summary RSS MiB": f"(MiB, {args.cli_runs:,} runs)",
    }
    cli_store.cleanup()
    startup = ("import", "--help")
    for case in startup if args.startup_only else (*CASES, *startup, *CLI_CASES):
        cells = " | ".join(f"{statistics.median(ratios[side][case]):.2f}" for side in names)
        print(f"| {case} | {floors[case]} | {cells} |")
    if not args.startup_only:
        cells = " | ".join(_syscall_cell(syscalls[side]) for side in names)
        print(f"| put file syscalls, 20 puts | 20 raw atomic writes | {cells} |")


if __name__ == "__main__":
    main()
