"""A hostile co-tenant of a ``file://`` root: links, FIFOs, devices, huge files, bad roots.

Whoever else can write in the root may plant a symbolic link where a run's
directory or an entry belongs, a FIFO or a device where an entry belongs, or
an entry far larger than any value. LocalFileBackend never follows a link
below its root (reading, writing, listing or deleting), opens nothing but a
regular file for reading and never waits on one, and reads no more than a
bound asks. So a clear or a sweep deletes nothing outside the root, a read
never hangs the event loop, and a bounded read never fills memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from taquba_memo import (
    AccessDeniedError,
    EntryTooLargeError,
    ForeignObjectError,
    InvalidArgumentError,
    InvalidURLError,
    LocalFileBackend,
    MemoStore,
    open_store,
)
from taquba_memo import _layout as layout
from taquba_memo._urls import open_backend
from taquba_memo.sync import open_store as open_sync_store

from tests.core._cli_support import (
    ExitCode,
    local_store_of_ended_runs,
    run_cli,
)

PREFIX = "agents"
PRECIOUS = b"not the memo store's to delete"
# Long enough for a read that does not block; far shorter than one that does.
DEADLINE_S = 20.0


def plant_linked_run(root: Path, outside: Path, run_id: str = "victim") -> list[Path]:
    """Files outside the root, laid out as a run's directory, and the run's
    directory under ``root`` a symbolic link to them. Returns the files."""
    files = []
    for step in range(2):
        step_directory = outside / str(step)
        step_directory.mkdir(parents=True)
        for key in ("a", "b"):
            file = step_directory / layout.hex_sha256(key)
            file.write_bytes(PRECIOUS)
            files.append(file)
    memos = root / PREFIX / "memos"
    memos.mkdir(parents=True, exist_ok=True)
    (memos / run_id).symlink_to(outside, target_is_directory=True)
    return files


def plant_linked_entry(tmp_path: Path) -> Path:
    """A precious file outside, and the entry ``run/entry`` of the root
    ``tmp_path / "root"`` a symbolic link to it. Returns the file."""
    target = tmp_path / "target"
    target.write_bytes(PRECIOUS)
    (tmp_path / "root" / "run").mkdir(parents=True)
    (tmp_path / "root" / "run" / "entry").symlink_to(target)
    return target


@pytest.fixture
def linked_victim(tmp_path: Path) -> list[Path]:
    """Run ``victim`` of the root ``tmp_path / "root"`` linked to files outside
    (:func:`plant_linked_run`). Returns the files."""
    return plant_linked_run(tmp_path / "root", tmp_path / "outside")


@pytest.fixture(params=["openat2", "component walk"])
def each_resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways a path below the root is resolved: Linux's openat2, and the
    component walk every other system (and a kernel before 5.6) uses."""
    from taquba_memo._backends import _no_follow

    if request.param == "component walk":
        monkeypatch.setattr(_no_follow, "_openat2", None)
    elif _no_follow._openat2 is None:
        pytest.skip("this system has no openat2")


def intact(files: list[Path]) -> bool:
    return all(file.read_bytes() == PRECIOUS for file in files)


async def keys_of(backend: LocalFileBackend, prefix: str = "") -> list[str]:
    return [key async for key in backend.list(prefix)]


# -- symbolic links ------------------------------------------------------------


@pytest.mark.usefixtures("each_resolution")
@pytest.mark.parametrize("strategy", ["per-run", "auto", "scan"])
async def test_a_sweep_deletes_nothing_through_a_linked_run_directory(
    tmp_path: Path, strategy: str
) -> None:
    root = tmp_path / "root"
    async with MemoStore(LocalFileBackend(root), PREFIX) as store:
        await store.new_memo("alpha", 0).put("k", b"v")
        await store.write_terminal_marker("alpha", 1_000)
        outside = plant_linked_run(root, tmp_path / "outside")
        await store.write_terminal_marker("victim", 1_000)
        await store.sweep(2_000, strategy=strategy)  # type: ignore[arg-type]
        assert intact(outside)
        assert await store.new_memo("alpha", 0).get("k") is None  # the real run was cleared


@pytest.mark.usefixtures("each_resolution")
async def test_clearing_a_run_whose_directory_is_a_link_deletes_nothing_outside(
    tmp_path: Path, linked_victim: list[Path]
) -> None:
    root = tmp_path / "root"
    async with MemoStore(LocalFileBackend(root), PREFIX) as store:
        assert await store.clear_memos_for_run("victim") == 0
    assert intact(linked_victim)
    assert (root / PREFIX / "memos" / "victim").is_symlink()  # left alone as well


def test_the_command_line_clear_and_sweep_delete_nothing_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    url = local_store_of_ended_runs(root, 1, [("k", b"v")])
    outside = plant_linked_run(root, tmp_path / "outside")
    with open_sync_store(url, prefix=PREFIX) as store:
        store.write_terminal_marker("victim", 1_000)
    cleared = run_cli("--url", url, "--prefix", PREFIX, "clear", "victim")
    assert cleared.code == ExitCode.OK, cleared.stderr
    assert intact(outside)
    swept = run_cli("--url", url, "--prefix", PREFIX, "--json", "sweep", "--older-than", "1d")
    assert swept.code == ExitCode.OK, swept.stderr
    assert "run-00" in swept.json()["runs_cleared"]
    assert intact(outside)


@pytest.mark.usefixtures("each_resolution")
async def test_clearing_while_a_run_directory_flips_to_a_link_deletes_nothing_outside(
    tmp_path: Path,
) -> None:
    """A link swapped in for a run's directory between a listing and its deletes is refused."""
    root = tmp_path / "root"
    outside = plant_linked_run(root, tmp_path / "outside", run_id="parked")
    run_directory = root / PREFIX / "memos" / "flip"
    entry = layout.hex_sha256("a")
    stop = threading.Event()

    def flip() -> None:
        for turn in range(1_000_000):
            if stop.is_set():
                return
            real = tmp_path / f"real-{turn}"
            (real / "0").mkdir(parents=True)
            (real / "0" / entry).write_bytes(b"v")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(run_directory)
            os.rename(real, run_directory)  # a real run directory, to be listed
            time.sleep(0.0005)
            with contextlib.suppress(FileNotFoundError):  # cleared (and removed) meanwhile
                os.rename(run_directory, tmp_path / f"aside-{turn}")
            os.symlink(tmp_path / "outside", run_directory)  # and now a link outside
            time.sleep(0.0005)

    async with MemoStore(LocalFileBackend(root), PREFIX) as store:
        flipper = threading.Thread(target=flip)
        flipper.start()
        try:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                with contextlib.suppress(ForeignObjectError):
                    await store.clear_memos_for_run("flip")
        finally:
            stop.set()
            flipper.join()
    assert intact(outside)


@pytest.mark.usefixtures("each_resolution")
async def test_an_entry_linked_to_a_file_outside_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"root:x:0:0")
    (tmp_path / "root" / "run" / "0").mkdir(parents=True)
    (tmp_path / "root" / "run" / "0" / "entry").symlink_to(secret)
    backend = LocalFileBackend(tmp_path / "root")
    with pytest.raises(ForeignObjectError, match="symbolic link"):
        await backend.get("run/0/entry")
    with pytest.raises(ForeignObjectError):
        await backend.get_at_most("run/0/entry", 1024)


@pytest.mark.usefixtures("each_resolution")
async def test_a_key_below_a_linked_directory_is_never_read_written_or_deleted(
    tmp_path: Path, linked_victim: list[Path]
) -> None:
    backend = LocalFileBackend(tmp_path / "root")
    key = f"{PREFIX}/memos/victim/0/{layout.hex_sha256('a')}"
    with pytest.raises(ForeignObjectError, match="symbolic link"):
        await backend.get(key)
    with pytest.raises(ForeignObjectError):
        await backend.put(key, b"overwritten")
    with pytest.raises(ForeignObjectError):
        await backend.put(f"{PREFIX}/memos/victim/9/new", b"created outside")
    with pytest.raises(ForeignObjectError):
        await backend.delete(key)
    assert intact(linked_victim)
    assert sorted(os.listdir(tmp_path / "outside")) == ["0", "1"]


@pytest.mark.usefixtures("each_resolution")
async def test_deleting_an_entry_that_is_a_link_removes_the_link_only(tmp_path: Path) -> None:
    target = plant_linked_entry(tmp_path)
    backend = LocalFileBackend(tmp_path / "root")
    await backend.delete_many(["run/entry"])
    assert target.read_bytes() == PRECIOUS
    assert not (tmp_path / "root" / "run").exists()


@pytest.mark.usefixtures("each_resolution")
async def test_a_put_replaces_a_linked_entry_without_writing_through_it(tmp_path: Path) -> None:
    target = plant_linked_entry(tmp_path)
    backend = LocalFileBackend(tmp_path / "root", durable=False)
    await backend.put("run/entry", b"new")
    assert target.read_bytes() == PRECIOUS
    assert await backend.get("run/entry") == b"new"


@pytest.mark.usefixtures("each_resolution")
async def test_listings_skip_links_and_special_files_and_log_each_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "root"
    plant_linked_run(root, tmp_path / "outside")
    backend = LocalFileBackend(root)
    await backend.put(f"{PREFIX}/memos/alpha/0/k", b"v")
    (root / PREFIX / "memos" / "alpha" / "0" / "to-file").symlink_to(tmp_path / "outside" / "0")
    os.mkfifo(root / PREFIX / "memos" / "alpha" / "0" / "fifo")
    with caplog.at_level(logging.WARNING, logger="taquba_memo"):
        for _ in range(2):
            assert await keys_of(backend) == [f"{PREFIX}/memos/alpha/0/k"]
            assert [o.key async for o in backend.list_with_metadata(f"{PREFIX}/")] == [
                f"{PREFIX}/memos/alpha/0/k"
            ]
            assert await keys_of(backend, f"{PREFIX}/memos/victim/") == []
    warnings = [r.getMessage() for r in caplog.records if r.name == "taquba_memo"]
    assert len(warnings) == 3, warnings
    assert any("victim" in w and "symbolic link" in w for w in warnings)
    assert any("fifo" in w and "FIFO" in w for w in warnings)


# -- FIFOs and devices -----------------------------------------------------------

READ_SPECIAL = """
import asyncio, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
from taquba_memo import ForeignObjectError, LocalFileBackend

async def main():
    backend = LocalFileBackend(sys.argv[1])
    for read in (backend.get(sys.argv[2]), backend.get_at_most(sys.argv[2], 1024)):
        try:
            await asyncio.wait_for(read, 5)
        except ForeignObjectError as error:
            print("ForeignObjectError", error)
        else:
            print("read a value")
    await backend.put("after/0/k", b"still works")
    print(await backend.get("after/0/k"))

asyncio.run(main())
"""


def read_special(root: Path, key: str) -> list[str]:
    """What reading ``key`` gives, in a child process killed at the deadline."""
    completed = subprocess.run(
        [sys.executable, "-c", READ_SPECIAL, str(root), key],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def test_a_fifo_entry_is_refused_at_once_and_the_event_loop_goes_on(tmp_path: Path) -> None:
    (tmp_path / "run" / "0").mkdir(parents=True)
    os.mkfifo(tmp_path / "run" / "0" / "entry")
    lines = read_special(tmp_path, "run/0/entry")
    assert [line.split(" ")[0] for line in lines[:2]] == ["ForeignObjectError"] * 2
    assert "FIFO" in lines[0]
    assert lines[2] == "b'still works'"


def test_an_entry_linked_to_an_endless_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run" / "0").mkdir(parents=True)
    (tmp_path / "run" / "0" / "entry").symlink_to("/dev/zero")
    lines = read_special(tmp_path, "run/0/entry")
    assert [line.split(" ")[0] for line in lines[:2]] == ["ForeignObjectError"] * 2


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_entry_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run" / "0").mkdir(parents=True)
    os.mknod(tmp_path / "run" / "0" / "entry", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    lines = read_special(tmp_path, "run/0/entry")
    assert [line.split(" ")[0] for line in lines[:2]] == ["ForeignObjectError"] * 2
    assert "character device" in lines[0]


SYNC_FIFO = """
import sys
from taquba_memo import ForeignObjectError
from taquba_memo.sync import open_store

with open_store(sys.argv[1], prefix="agents") as store:
    try:
        store.new_memo("run", 0).get("k")
    except ForeignObjectError:
        print("refused")
    store.new_memo("run", 1).put("k", b"v")
    print(store.new_memo("run", 1).get("k"))
"""


def test_the_sync_api_refuses_a_fifo_entry_and_keeps_working(tmp_path: Path) -> None:
    entry = tmp_path / "agents" / layout.memo_key("", "run", 0, "k")
    entry.parent.mkdir(parents=True)
    os.mkfifo(entry)
    completed = subprocess.run(
        [sys.executable, "-c", SYNC_FIFO, tmp_path.as_uri()],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["refused", "b'v'"]


@pytest.mark.usefixtures("each_resolution")
async def test_a_directory_at_an_entry_path_is_no_value(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path)
    await backend.put("run/0/k/below", b"v")
    assert await backend.get("run/0/k") is None
    assert await backend.get_at_most("run/0/k", 10) is None


# -- bounded reads ---------------------------------------------------------------


@pytest.mark.usefixtures("each_resolution")
@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 64 * 1024, 64 * 1024 + 1, 2**20])
async def test_get_at_most_returns_what_get_does_up_to_the_bound(tmp_path: Path, size: int) -> None:
    backend = LocalFileBackend(tmp_path)
    value = os.urandom(size)
    await backend.put("run/0/k", value)
    assert await backend.get_at_most("run/0/k", size) == value
    assert await backend.get_at_most("run/0/k", size + 1) == value
    assert await backend.get_at_most("run/0/missing", size) is None
    if size:
        with pytest.raises(EntryTooLargeError, match=f"holds {size} bytes"):
            await backend.get_at_most("run/0/k", size - 1)


@pytest.mark.parametrize("max_bytes", [-1, 1.5, "10", True])
async def test_get_at_most_refuses_a_bound_that_is_not_a_size(
    tmp_path: Path, max_bytes: object
) -> None:
    backend = LocalFileBackend(tmp_path)
    with pytest.raises((InvalidArgumentError, TypeError)):
        await backend.get_at_most("run/0/k", max_bytes)  # type: ignore[arg-type]


def test_a_read_of_a_growing_file_holds_no_more_than_the_bound_plus_one() -> None:
    """A pipe stands for a file that keeps growing past its fstat size."""
    from taquba_memo._backends.local import _read_at_most

    reader, writer = os.pipe()
    written = 4 * 2**20

    def write() -> None:
        with contextlib.suppress(BrokenPipeError), os.fdopen(writer, "wb") as pipe:
            pipe.write(b"x" * written)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert _read_at_most(reader, 0, 1024) is None
        with os.fdopen(reader, "rb") as rest:
            left = len(rest.read())
    finally:
        thread.join()
    assert written - left <= 1025


RSS_PROBE = """
import asyncio, json, os, sys
from taquba_memo import EntryTooLargeError, LocalFileBackend

root, size = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(root, "run", "0"))
with open(os.path.join(root, "run", "0", "big"), "wb") as file:
    block = b"x" * 2**20
    for _ in range(size // len(block)):
        file.write(block)
backend = LocalFileBackend(root)

def peak_kib():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")

async def main():
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # the peak restarts from the current size
    before = peak_kib()
    try:
        await backend.get_at_most("run/0/big", 1024)
        refused = False
    except EntryTooLargeError:
        refused = True
    bounded = peak_kib()
    await backend.get("run/0/big")
    print(json.dumps({"before": before, "bounded": bounded, "unbounded": peak_kib(),
                      "refused": refused}))

asyncio.run(main())
"""


def test_a_bounded_read_of_a_256_mib_entry_adds_no_memory(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(tmp_path), str(256 * 2**20)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    peaks = json.loads(completed.stdout)
    print("ru_maxrss KiB:", peaks)
    assert peaks["refused"]
    assert peaks["bounded"] - peaks["before"] < 4 * 1024
    assert peaks["unbounded"] - peaks["before"] > 200 * 1024  # what the bound saved


# -- read-only file systems ----------------------------------------------------


@contextlib.contextmanager
def read_only_view(source: Path, view: Path) -> Iterator[Path]:
    """``source`` mounted read-only at ``view`` (a bind mount: needs root)."""
    view.mkdir()
    bound = subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=True)


async def test_a_read_only_file_system_is_access_denied(tmp_path: Path) -> None:
    source = tmp_path / "source"
    await LocalFileBackend(source).put("run/0/k", b"v")
    with read_only_view(source, tmp_path / "view") as view:
        backend = LocalFileBackend(view)
        assert await backend.get("run/0/k") == b"v"
        with pytest.raises(AccessDeniedError, match="Read-only"):
            await backend.put("run/0/other", b"v")
        with pytest.raises(AccessDeniedError):
            await backend.delete("run/0/k")
        with pytest.raises(AccessDeniedError):
            await LocalFileBackend(view / "new").put("k", b"v")


def test_the_command_line_exits_5_on_a_read_only_file_system(tmp_path: Path) -> None:
    local_store_of_ended_runs(tmp_path / "source", 1, [("k", b"v")])
    with read_only_view(tmp_path / "source", tmp_path / "view") as view:
        result = run_cli("--url", view.as_uri(), "--prefix", PREFIX, "clear", "run-00")
    assert result.code == ExitCode.ACCESS_DENIED, result.stderr


# -- roots that cannot name a directory ------------------------------------------


@pytest.mark.parametrize("url", ["file:///a%00b", "file:///tmp/x%00", "file:///a/\ud800"])
def test_a_file_url_that_cannot_name_a_directory_is_refused_at_open(url: str) -> None:
    with pytest.raises(InvalidURLError):
        open_store(url)
    with pytest.raises(InvalidURLError):
        open_backend(url)


@pytest.mark.parametrize("root", ["/a\x00b", "/a/\ud800"])
def test_a_root_that_cannot_name_a_directory_is_refused(root: str) -> None:
    with pytest.raises(InvalidArgumentError):
        LocalFileBackend(root)


async def test_a_key_the_file_system_cannot_encode_is_an_invalid_key(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path)
    with pytest.raises(InvalidArgumentError):
        await backend.put("run/\ud800", b"v")
    assert os.listdir(tmp_path) == []
