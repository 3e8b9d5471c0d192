"""ObstoreBackend refuses obstore's LocalStore: it would delete through a symbolic link.

object_store's LocalFileSystem follows links below its root when it lists,
reads and deletes, so a co-tenant who links a run's directory elsewhere would
have a clear or a sweep delete the files there. No shipped ``file://``
backend may delete outside its root: the adapter refuses the store at once,
naming taquba_memo.LocalFileBackend, which never follows a link below its root.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from obstore.store import LocalStore
from taquba_memo import InvalidConfigurationError, LocalFileBackend, MemoStore
from taquba_memo import _layout as layout
from taquba_memo_obstore import ObstoreBackend, capabilities_for, open_url

PRECIOUS = b"not the memo store's to delete"


def plant_linked_run(root: Path, outside: Path) -> list[Path]:
    """Files outside ``root`` laid out as a run's directory, which links to them."""
    files = []
    for step in range(2):
        (outside / str(step)).mkdir(parents=True)
        file = outside / str(step) / layout.hex_sha256("k")
        file.write_bytes(PRECIOUS)
        files.append(file)
    (root / "agents" / "memos").mkdir(parents=True)
    (root / "agents" / "memos" / "victim").symlink_to(outside, target_is_directory=True)
    return files


def test_a_local_store_is_refused_and_the_message_names_local_file_backend(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    for build in (
        lambda: ObstoreBackend(store),
        lambda: ObstoreBackend(store, base_path="base"),
        lambda: capabilities_for(store),
        lambda: open_url(f"file://{tmp_path}"),
        lambda: open_url(f"file+obstore://{tmp_path}"),
    ):
        with pytest.raises(InvalidConfigurationError, match="symbolic links") as refused:
            build()
        assert "taquba_memo.LocalFileBackend" in str(refused.value)


async def test_no_file_backend_shipped_deletes_through_a_linked_run_directory(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    outside = plant_linked_run(root, tmp_path / "outside")
    with pytest.raises(InvalidConfigurationError):
        ObstoreBackend(LocalStore(root))
    async with MemoStore(LocalFileBackend(root), "agents") as store:
        assert await store.clear_memos_for_run("victim") == 0
    assert all(file.read_bytes() == PRECIOUS for file in outside)
