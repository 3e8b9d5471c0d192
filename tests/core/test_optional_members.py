"""Optional backend members: one Protocol each, declared by having the method, forwarded exactly.

Every optional member of a backend (``list_with_metadata``, ``get_at_most``,
``after_fork``, ``list_after``, ``get_in_thread``) is a runtime-checkable
Protocol in ``OPTIONAL_MEMBERS``; a backend offers it by having the method and in no other way.
``ForwardingBackend`` offers, and forwards, each one exactly when the backend
it wraps offers it, so a store over the wrapper falls back just as it would
over the wrapped backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from taquba_memo import (
    EntryTooLargeError,
    InMemoryBackend,
    InvalidArgumentError,
    LocalFileBackend,
    MemoBackend,
    _fork,
)
from taquba_memo.adapter_kit import ForwardingBackend
from taquba_memo.backend import (
    OPTIONAL_MEMBERS,
    Capabilities,
    ListedObject,
    ListsAfter,
    ListsMetadata,
    MemoBackendBase,
    ReadsBounded,
    ReadsInThread,
    RebuildsAfterFork,
    lists_after,
    lists_metadata,
    member_name,
    offers,
    reads_bounded,
    reads_in_thread,
    rebuilds_after_fork,
)
from taquba_memo_conformance import RecordingBackend

from .conftest import SixOperationsOnly


class RebuildsOnFork(InMemoryBackend):
    """An InMemoryBackend with an ``after_fork`` hook that counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.rebuilt = 0

    def after_fork(self) -> None:
        self.rebuilt += 1


# -- what offering each member looks like, and the call that shows it was forwarded ----------


async def lists_the_size_written(backend: MemoBackend) -> None:
    await backend.put("a/k", b"four")
    listing = [item async for item in backend.list_with_metadata("a/")]  # type: ignore[attr-defined]
    assert [(item.key, item.size) for item in listing] == [("a/k", 4)]
    assert all(isinstance(item, ListedObject) for item in listing)


async def reads_at_most_the_bound(backend: MemoBackend) -> None:
    await backend.put("k", b"four")
    assert await backend.get_at_most("k", 4) == b"four"  # type: ignore[attr-defined]
    with pytest.raises(EntryTooLargeError):
        await backend.get_at_most("k", 3)  # type: ignore[attr-defined]


async def lists_only_the_keys_after_the_start(backend: MemoBackend) -> None:
    for key in ("a/1", "a/2", "a/3", "b/4"):
        await backend.put(key, b"")
    listing = backend.list_after("a/", "a/2")  # type: ignore[attr-defined]
    assert [key async for key in listing] == ["a/3"]


async def reads_in_the_calling_thread(backend: MemoBackend) -> None:
    await backend.put("k", b"four")
    assert backend.get_in_thread("k", None) == b"four"  # type: ignore[attr-defined]
    assert backend.get_in_thread("k", 4) == b"four"  # type: ignore[attr-defined]
    assert backend.get_in_thread("missing", None) is None  # type: ignore[attr-defined]
    with pytest.raises(EntryTooLargeError):
        backend.get_in_thread("k", 3)  # type: ignore[attr-defined]


async def rebuilds_the_wrapped_backend(backend: MemoBackend) -> None:
    _fork.after_fork(backend)  # what a store calls on its first use in a forked child
    _fork.after_fork(backend)
    inner = backend.inner  # type: ignore[attr-defined]
    assert isinstance(inner, RebuildsOnFork)
    assert inner.rebuilt == 2


@dataclasses.dataclass(frozen=True)
class MemberCase:
    """A backend that offers the member, one that lacks it, and a call proving it was forwarded."""

    offering: Callable[[Path], MemoBackend]
    lacking: Callable[[Path], MemoBackend]
    forwarded_call: Callable[[MemoBackend], Awaitable[None]]


CASES: dict[type, MemberCase] = {
    ListsMetadata: MemberCase(
        offering=lambda tmp: LocalFileBackend(tmp / "store"),
        lacking=lambda tmp: SixOperationsOnly(),
        forwarded_call=lists_the_size_written,
    ),
    ReadsBounded: MemberCase(
        offering=lambda tmp: InMemoryBackend(),
        lacking=lambda tmp: SixOperationsOnly(),
        forwarded_call=reads_at_most_the_bound,
    ),
    RebuildsAfterFork: MemberCase(
        offering=lambda tmp: RebuildsOnFork(),
        lacking=lambda tmp: LocalFileBackend(tmp / "store"),
        forwarded_call=rebuilds_the_wrapped_backend,
    ),
    ListsAfter: MemberCase(
        offering=lambda tmp: LocalFileBackend(tmp / "store"),
        lacking=lambda tmp: SixOperationsOnly(),
        forwarded_call=lists_only_the_keys_after_the_start,
    ),
    ReadsInThread: MemberCase(
        offering=lambda tmp: LocalFileBackend(tmp / "store"),
        lacking=lambda tmp: SixOperationsOnly(),
        forwarded_call=reads_in_the_calling_thread,
    ),
}

MEMBERS = pytest.mark.parametrize("protocol", OPTIONAL_MEMBERS, ids=member_name)


class TestTheRegistry:
    def test_each_optional_member_is_one_protocol_declaring_one_method(self) -> None:
        assert [member_name(protocol) for protocol in OPTIONAL_MEMBERS] == [
            "list_with_metadata",
            "get_at_most",
            "after_fork",
            "list_after",
            "get_in_thread",
        ]

    def test_every_optional_member_has_a_forwarding_case_here(self) -> None:
        assert set(CASES) == set(OPTIONAL_MEMBERS)

    def test_capabilities_holds_flags_and_declares_no_method(self) -> None:
        flags = {field.name for field in dataclasses.fields(Capabilities)}
        assert flags == {"ordered_listing", "conditional_put", "max_delete_batch"}
        assert not flags & {member_name(protocol) for protocol in OPTIONAL_MEMBERS}

    def test_the_named_checks_agree_with_offers(self) -> None:
        backend = RebuildsOnFork()
        assert lists_metadata(backend) is offers(backend, ListsMetadata) is True
        assert reads_bounded(backend) is offers(backend, ReadsBounded) is True
        assert rebuilds_after_fork(backend) is offers(backend, RebuildsAfterFork) is True
        assert lists_after(backend) is offers(backend, ListsAfter) is True
        assert reads_in_thread(backend) is offers(backend, ReadsInThread) is True
        assert not rebuilds_after_fork(InMemoryBackend())

    def test_offers_refuses_a_protocol_that_is_not_an_optional_member(self) -> None:
        with pytest.raises(InvalidArgumentError):
            offers(InMemoryBackend(), MemoBackendBase)

    def test_a_member_set_to_none_is_not_offered(self) -> None:
        class Withdrawn(InMemoryBackend):
            get_at_most = None  # type: ignore[assignment]

        assert not reads_bounded(Withdrawn())


class TestForwardingBackend:
    @MEMBERS
    async def test_offers_and_forwards_a_member_the_wrapped_backend_offers(
        self, protocol: type, tmp_path: Path
    ) -> None:
        case = CASES[protocol]
        inner = case.offering(tmp_path)
        assert offers(inner, protocol)
        wrapped = ForwardingBackend(inner)
        assert offers(wrapped, protocol)
        await case.forwarded_call(wrapped)

    @MEMBERS
    def test_lacks_a_member_the_wrapped_backend_lacks(self, protocol: type, tmp_path: Path) -> None:
        inner = CASES[protocol].lacking(tmp_path)
        assert not offers(inner, protocol)
        assert not offers(ForwardingBackend(inner), protocol)
        # A subclass that overrides the member and calls super() lacks it too.
        assert not offers(RecordingBackend(inner), protocol)

    def test_lists_metadata_over_a_local_file_backend(self, tmp_path: Path) -> None:
        assert lists_metadata(ForwardingBackend(LocalFileBackend(tmp_path)))

    def test_a_wrapper_over_a_wrapper_forwards_the_same_members(self, tmp_path: Path) -> None:
        inner = LocalFileBackend(tmp_path)
        twice = ForwardingBackend(RecordingBackend(inner))
        assert [offers(twice, p) for p in OPTIONAL_MEMBERS] == [
            offers(inner, p) for p in OPTIONAL_MEMBERS
        ]

    def test_forwarded_members_narrows_what_a_subclass_offers(self, tmp_path: Path) -> None:
        class Compressing(ForwardingBackend):
            """Changes values, so the wrapped backend's sizes and bounds are not its own."""

            forwarded_members = (RebuildsAfterFork,)

        wrapped = Compressing(RebuildsOnFork())
        assert not lists_metadata(wrapped)
        assert not reads_bounded(wrapped)
        assert rebuilds_after_fork(wrapped)
        assert isinstance(wrapped, Compressing)

    def test_the_wrapper_keeps_its_class_name_and_decides_afresh_per_wrapped_backend(
        self,
    ) -> None:
        lacking = RecordingBackend(SixOperationsOnly())
        assert type(lacking).__name__ == "RecordingBackend"
        assert isinstance(lacking, RecordingBackend)
        offering = type(lacking)(InMemoryBackend())
        assert reads_bounded(offering)
        assert lists_metadata(offering)
