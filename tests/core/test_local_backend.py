"""LocalFileBackend: the object tree on disk, atomic writes, safe across processes."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from taquba_memo import BackendError, InvalidKeyError, LocalFileBackend, MemoStore
from taquba_memo._backends.local import INLINE_READ_BYTES


async def keys_of(backend: LocalFileBackend, prefix: str = "") -> list[str]:
    return [key async for key in backend.list(prefix)]


async def test_key_a_b_c_is_the_file_root_a_b_c(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path)
    await backend.put("a/b/c", b"value")
    assert (tmp_path / "a" / "b" / "c").read_bytes() == b"value"


async def test_files_written_by_another_process_are_read(tmp_path: Path) -> None:
    (tmp_path / "memo" / "x").mkdir(parents=True)
    (tmp_path / "memo" / "x" / "y").write_bytes(b"from rust")
    backend = LocalFileBackend(tmp_path)
    assert await backend.get("memo/x/y") == b"from rust"
    assert await keys_of(backend) == ["memo/x/y"]


async def test_listing_is_in_byte_order_across_directories(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path)
    keys = ["a/b", "a-c", "a.d", "a0", "B", "9", "10", "é", "a/b0", "ab/c"]
    for key in keys:
        await backend.put(key, b"")
    assert await keys_of(backend) == sorted(keys, key=lambda k: k.encode())


async def test_listing_matches_raw_prefixes_inside_a_directory(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path)
    for key in ["p/run/a", "p/run-suffix/b", "p/runner", "p/foo.bar", "p/ru"]:
        await backend.put(key, b"")
    assert await keys_of(backend, "p/run") == ["p/run-suffix/b", "p/run/a", "p/runner"]
    assert await keys_of(backend, "p/run/") == ["p/run/a"]
    assert await keys_of(backend, "missing/") == []
    assert await keys_of(backend, "../") == []


async def test_staging_files_are_never_listed_or_read(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path)
    await backend.put("d/key", b"v")
    # What a writer killed mid-write leaves behind (object_store's staging name).
    (tmp_path / "d" / "key#123456").write_bytes(b"torn")
    assert await keys_of(backend) == ["d/key"]
    with pytest.raises(InvalidKeyError):
        await backend.get("d/key#123456")


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/./b", "../escape", "a/..", "trail/"])
async def test_keys_with_empty_dot_or_dotdot_segments_are_refused(tmp_path: Path, key: str) -> None:
    backend = LocalFileBackend(tmp_path / "root")
    with pytest.raises(InvalidKeyError):
        await backend.put(key, b"v")
    assert not (tmp_path / "root").exists()


async def test_deleting_removes_directories_left_empty(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path)
    store = MemoStore(backend, "memo")
    await store.new_memo("run", 0).put("k", b"v")
    await store.new_memo("other", 0).put("k", b"v")
    await store.clear_memos_for_run("run")
    assert sorted(p.name for p in (tmp_path / "memo" / "memos").iterdir()) == ["other"]


async def test_a_key_that_is_another_keys_directory_is_a_backend_error(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path)
    await backend.put("a/b", b"v")
    with pytest.raises(BackendError):
        await backend.put("a", b"v")
    assert await backend.get("a") is None
    await backend.delete("a")
    assert await keys_of(backend) == ["a/b"]


async def test_readers_never_see_a_torn_value_during_overwrites(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path, durable=False)
    values = [bytes([i]) * 200_000 for i in range(1, 6)]
    await backend.put("k", values[0])
    seen: set[bytes] = set()

    async def write() -> None:
        for _ in range(20):
            for value in values:
                await backend.put("k", value)

    async def read() -> None:
        for _ in range(200):
            value = await backend.get("k")
            assert value is not None
            seen.add(value)

    await asyncio.gather(write(), read(), read())
    assert seen <= set(values)
    assert await keys_of(backend) == ["k"]


CREATE_ONCE = """
import asyncio, os, sys, time
from taquba_memo import LocalFileBackend
root, go = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 30
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.001)
won = asyncio.run(LocalFileBackend(root).put("race/key", sys.argv[3].encode(), if_absent=True))
print("won" if won else "lost")
"""


def test_if_absent_has_exactly_one_winner_across_processes(tmp_path: Path) -> None:
    go = tmp_path / "go"
    root = tmp_path / "root"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_ONCE, str(root), str(go), f"writer-{i}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    go.touch()
    results = [writer.communicate(timeout=60)[0].strip() for writer in writers]
    assert results.count("won") == 1
    winner = results.index("won")
    assert (root / "race" / "key").read_bytes() == f"writer-{winner}".encode()
    assert os.listdir(root / "race") == ["key"]


@pytest.mark.parametrize("size", [0, 1, INLINE_READ_BYTES, INLINE_READ_BYTES + 1, 3 * 2**20])
@pytest.mark.parametrize("durable", [True, False])
async def test_values_on_both_sides_of_the_inline_size_round_trip(
    tmp_path: Path, size: int, durable: bool
) -> None:
    # Up to INLINE_READ_BYTES a get reads on the event loop (and a non-durable
    # put writes there); larger values go through a thread. Both are exact.
    backend = LocalFileBackend(tmp_path, durable=durable)
    value = os.urandom(size)
    assert await backend.put("run/0/k", value)
    assert await backend.get("run/0/k") == value
    assert (tmp_path / "run" / "0" / "k").read_bytes() == value
    assert not await backend.put("run/0/k", b"other", if_absent=True)
    assert await keys_of(backend) == ["run/0/k"]  # no staging file left behind


async def test_a_get_of_a_directory_or_under_a_file_finds_nothing(tmp_path: Path) -> None:
    backend = LocalFileBackend(tmp_path)
    await backend.put("a/b/c", b"v")
    assert await backend.get("a/b") is None  # a directory is not a key
    assert await backend.get("a/b/c/d") is None  # below a file: no such key


async def test_list_after_never_opens_a_directory_whose_keys_all_come_before_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A link planted in a directory is reported by any listing that opens the
    # directory, so silence shows that list_after skipped it unopened.
    backend = LocalFileBackend(tmp_path / "root")
    for key in ("t/a/k", "t/b/k", "t/b0", "t/c/k"):
        await backend.put(key, b"")
    (tmp_path / "root" / "t" / "a" / "planted").symlink_to(tmp_path)

    with caplog.at_level(logging.WARNING, logger="taquba_memo"):
        after = [key async for key in backend.list_after("t/", "t/b")]
        assert not [r for r in caplog.records if "planted" in r.getMessage()]
        assert after == ["t/b/k", "t/b0", "t/c/k"]
        # A start inside a directory opens it, and keeps only what follows.
        assert [key async for key in backend.list_after("t/", "t/b/")] == after
        assert [key async for key in backend.list_after("t/", "t/b/k")] == ["t/b0", "t/c/k"]
        # The plain listing opens it, and says so.
        assert await keys_of(backend, "t/") == ["t/a/k", *after]
        assert [r for r in caplog.records if "planted" in r.getMessage()]
