"""ListAfterTests: the optional ``list_after``, a listing that starts after a key.

``list_after(prefix, start_after)`` yields what ``list(prefix)`` yields less
every key not strictly greater than ``start_after`` as UTF-8 bytes: never the
start key itself (GCS's ``startOffset`` is inclusive), every longer key it
begins, multi-byte characters in byte order (not UTF-16 order), and the
prefix exactly as ``list`` matches it. The checks are skipped, naming the
member, for a backend that does not offer it.
"""

from __future__ import annotations

import pytest
from taquba_memo import InvalidValueTypeError, MemoBackend
from taquba_memo.backend import ListsAfter

from taquba_memo_conformance._base import SuiteBase
from taquba_memo_conformance.exact_prefix import DECOY_CASES
from taquba_memo_conformance.keyspace import KeySpace, byte_order, collect, put_all

__all__ = ["AFTER_KEYS", "ListAfterTests"]

# Keys below one directory, none of them another's directory (a file system
# holds them all). "." "-" and " " sort before "/"; "é" (two bytes) before
# "漢" (three) before "😀" (four), though UTF-16 puts "😀" before U+FFFD.
AFTER_KEYS: tuple[str, ...] = (
    "9",
    "A",
    "a b",
    "a-b",
    "a.b",
    "a/b",
    "a/c/d",
    "a0",
    "ab",
    "abc",
    "ab~",
    "é",
    "éa",
    "漢",
    "\U0001f600",
    "~",
)

# Start keys, relative to the directory: every key (the equal key is left
# out, longer keys it begins are not), and keys that are no key: before
# everything, a directory ("a", "a/c"), between keys, past everything.
AFTER_STARTS: tuple[str, ...] = (
    *AFTER_KEYS,
    "",
    "0",
    "a",
    "a/",
    "a/c",
    "a/c/",
    "a/b/z",
    "e",
    "\ufffd",
    "\U0010ffff",
)


def _after(keys: list[str], start_after: str) -> list[str]:
    return [key for key in keys if key.encode() > start_after.encode()]


class ListAfterTests(SuiteBase):
    """The optional ``list_after``; mixed into ``MemoBackendConformance``."""

    async def _listed_after(
        self, backend: MemoBackend, space: KeySpace, prefix: str, start_after: str
    ) -> list[str]:
        """``list_after(prefix, start_after)``, in byte order where the listing is unordered."""
        lister: ListsAfter = self.require_member(backend, ListsAfter)
        keys = await collect(lister.list_after(prefix, start_after))
        outside = [space.show(key) for key in keys if not key.startswith(prefix)]
        assert not outside, (
            f"list_after({space.show(prefix)!r}, ...) returned {outside}: it yields only "
            "keys that start with the raw string prefix"
        )
        return keys if backend.capabilities.ordered_listing else byte_order(keys)

    async def test_list_after_yields_exactly_the_keys_greater_than_the_start(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require_member(backend, ListsAfter)
        root = space.key("after", "")
        keys = byte_order(root + key for key in AFTER_KEYS)
        await put_all(backend, dict.fromkeys(reversed(keys), b""), concurrency=8)
        await backend.put(space.key("after0"), b"")  # past the prefix: never yielded
        starts = [root + start for start in AFTER_STARTS]
        # Start keys outside the prefix, before and after it.
        starts += ["", space.root, space.key("after"), space.key("after0"), "\U0010ffff"]
        for start in starts:
            listed = await self._listed_after(backend, space, root, start)
            assert listed == _after(keys, start), (
                f"list_after({space.show(root)!r}, {space.show(start)!r}) must yield the keys "
                "greater than the start key as UTF-8 bytes, never the start key itself"
            )

    async def test_list_after_crosses_page_boundaries(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require_member(backend, ListsAfter)
        root = space.key("many", "")
        keys = [root + f"{i:05d}" for i in range(self.page_boundary_keys)]
        await put_all(backend, dict.fromkeys(keys, b""), concurrency=self.write_concurrency)
        for start in (root, keys[0], keys[len(keys) // 2], keys[-2], keys[-1]):
            listed = await self._listed_after(backend, space, root, start)
            assert listed == _after(keys, start), (
                f"list_after from {space.show(start)!r} lost or repeated keys across pages"
            )

    async def test_list_after_matches_an_exact_prefix_not_a_pattern(
        self, backend: MemoBackend, space: KeySpace
    ) -> None:
        self.require_member(backend, ListsAfter)
        written: dict[str, bytes] = {}
        for case, decoy in DECOY_CASES.items():
            written |= {space.key(case, key): key.encode() for key in decoy.keys}
        await put_all(backend, written, concurrency=self.write_concurrency)
        for case, decoy in DECOY_CASES.items():
            root = space.key(case, "")
            for prefix, expected in decoy.probes.items():
                under = byte_order(root + key for key in expected)
                # From the prefix itself, from each key under it, from each decoy.
                for start in (root + prefix, *under, *(root + key for key in decoy.decoys)):
                    listed = await self._listed_after(backend, space, root + prefix, start)
                    assert listed == _after(under, start), (
                        f"list_after({space.show(root + prefix)!r}, {space.show(start)!r}) "
                        f"returned {[space.show(key) for key in listed]}: it must match the raw "
                        f"string prefix, not a pattern ({decoy.dialect})"
                    )

    async def test_list_after_can_stop_early(self, backend: MemoBackend, space: KeySpace) -> None:
        lister: ListsAfter = self.require_member(backend, ListsAfter)
        keys = byte_order(space.key("early", str(i)) for i in range(5))
        await put_all(backend, dict.fromkeys(keys, b""), concurrency=8)
        listing = lister.list_after(space.key("early", ""), keys[0])
        first = await anext(listing)
        aclose = getattr(listing, "aclose", None)
        if aclose is not None:
            await aclose()
        assert first in keys[1:]
        if backend.capabilities.ordered_listing:
            assert first == keys[1]
        assert await space.listed(backend, space.key("early", "")) == keys

    @pytest.mark.parametrize("start_after", [b"k", 42, None], ids=["bytes", "int", "none"])
    async def test_list_after_refuses_a_non_str_start_before_any_io(
        self, backend: MemoBackend, space: KeySpace, start_after: object
    ) -> None:
        lister: ListsAfter = self.require_member(backend, ListsAfter)
        with pytest.raises(InvalidValueTypeError):
            await collect(lister.list_after(space.prefix, start_after))  # type: ignore[arg-type]
        with pytest.raises(InvalidValueTypeError):
            await collect(lister.list_after(42, space.prefix))  # type: ignore[arg-type]
