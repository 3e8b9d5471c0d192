"""LocalFileBackend makes no system call its work does not need: counted on the real file system.

Each test wraps the ``os`` functions the backend calls with counters that
call the real function, so the files are real and only the calls are counted;
the store-level test counts the interpreter's own audit events instead, in a
child process (an audit hook cannot be removed), with nothing replaced.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from taquba_memo import LocalFileBackend

COUNTED = ("mkdir", "stat", "lstat", "unlink", "rmdir", "fsync", "replace", "rename", "link")


@pytest.fixture
def os_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each of COUNTED was called, failing calls included."""
    calls: Counter[str] = Counter()

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return call

    for name in COUNTED:
        monkeypatch.setattr(os, name, counting(name, getattr(os, name)))
    return calls


async def test_a_durable_put_makes_only_the_calls_of_an_atomic_write(
    tmp_path: Path, os_calls: Counter[str]
) -> None:
    """Write a staging file, fsync it, rename it over the key, fsync the directory: nothing more."""
    backend = LocalFileBackend(tmp_path)
    await backend.put("run/step/first", b"v")
    os_calls.clear()
    await backend.put("run/step/second", b"value")
    assert os_calls == Counter(fsync=2, replace=1)
    assert (tmp_path / "run" / "step" / "second").read_bytes() == b"value"


async def test_a_put_creates_each_missing_directory_with_one_mkdir(
    tmp_path: Path, os_calls: Counter[str]
) -> None:
    backend = LocalFileBackend(tmp_path)
    await backend.put("seed", b"")  # the root exists from here on
    os_calls.clear()
    await backend.put("run/step/key", b"value")
    assert os_calls["mkdir"] == 2
    assert os_calls["stat"] == os_calls["unlink"] == 0


async def test_a_batch_delete_removes_each_emptied_directory_once(
    tmp_path: Path, os_calls: Counter[str]
) -> None:
    """A sweep's batch tries rmdir once per directory it emptied, not after every unlink."""
    backend = LocalFileBackend(tmp_path)
    keys = [f"run/{step}/{index}" for step in ("a", "b") for index in range(50)]
    for key in keys:
        await backend.put(key, b"")
    os_calls.clear()
    await backend.delete_many(keys)
    assert os_calls["unlink"] == len(keys)
    assert os_calls["rmdir"] == 3  # run/a, run/b, then run
    assert os.listdir(tmp_path) == []


async def test_a_batch_delete_keeps_a_directory_that_still_holds_a_key(
    tmp_path: Path, os_calls: Counter[str]
) -> None:
    backend = LocalFileBackend(tmp_path)
    for key in ("run/a/1", "run/a/2", "run/b/1"):
        await backend.put(key, b"")
    await backend.delete_many(["run/a/1", "run/b/1"])
    assert [key async for key in backend.list("")] == ["run/a/2"]
    assert os.listdir(tmp_path / "run") == ["a"]


async def test_a_listing_hands_batches_of_keys_not_directories_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalFileBackend(tmp_path, durable=False)
    keys = sorted(f"run/{directory:03d}/k" for directory in range(100))
    for key in keys:
        await backend.put(key, b"")
    hops = 0
    real_to_thread = asyncio.to_thread

    async def counting_to_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await real_to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)
    assert [key async for key in backend.list("run/")] == keys
    assert hops == 1  # 101 directories, 100 keys: one batch


# A child process: seed a run, then count the file-system audit events of one more put.
_AUDITED_PUT = textwrap.dedent(
    """
    import asyncio, json, sys
    from taquba_memo import LocalFileBackend, MemoStore

    FILE_EVENTS = ("open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.link",
                   "os.chmod", "os.scandir", "os.listdir", "shutil.")
    seen = []
    counting = False

    def hook(event, args):
        if counting and event.startswith(FILE_EVENTS):
            seen.append(event)

    sys.addaudithook(hook)

    async def main():
        global counting
        memo = MemoStore(LocalFileBackend(sys.argv[1]), "app").new_memo("run", 0)
        await memo.put("first", b"v")
        counting = True
        await memo.put("second", b"value")
        counting = False
        print(json.dumps(seen))

    asyncio.run(main())
    """
)


def test_a_memo_put_audits_only_the_staging_open_and_the_rename(tmp_path: Path) -> None:
    """A durable put through the store, counted by audit hooks: no mkdir, stat or unlink."""
    done = subprocess.run(
        [sys.executable, "-c", _AUDITED_PUT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout) == ["open", "os.rename"]
