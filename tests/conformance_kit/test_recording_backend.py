"""The kit's RecordingBackend records every operation that reaches storage, with its key or prefix,
and otherwise behaves exactly as the backend it wraps."""

from __future__ import annotations

from dataclasses import replace

from taquba_memo import InMemoryBackend
from taquba_memo.backend import MemoBackendBase, reads_bounded
from taquba_memo_conformance import RecordingBackend


async def test_every_call_is_recorded_with_its_key_and_forwarded() -> None:
    inner = InMemoryBackend()
    backend = RecordingBackend(inner)

    assert await backend.put("run/a", b"1") is True
    assert await backend.put("run/a", b"2", if_absent=True) is False
    assert await backend.get("run/a") == b"1"
    await backend.delete("run/missing")
    listed = [key async for key in backend.list("run/")]

    assert listed == ["run/a"] == backend.listed
    assert backend.calls == [
        ("put", "run/a"),
        ("put", "run/a"),
        ("get", "run/a"),
        ("delete", "run/missing"),
        ("list", "run/"),
    ]
    assert backend.counts() == {"put": 2, "get": 1, "delete": 1, "list": 1}
    assert backend.count("put") == 2
    assert backend.keys("list") == ["run/"]
    assert await inner.get("run/a") == b"1"


async def test_a_batch_delete_records_each_key_and_the_batch() -> None:
    backend = RecordingBackend(InMemoryBackend())
    for key in ("a", "b", "c"):
        await backend.put(key, b"")
    backend.clear()

    await backend.delete_many(["a", "b", "c"])

    assert backend.calls == [("delete_many", "a"), ("delete_many", "b"), ("delete_many", "c")]
    assert backend.batches == [["a", "b", "c"]]
    assert [key async for key in backend.list("")] == []


async def test_given_capabilities_replace_the_wrapped_backends() -> None:
    without_conditional_put = replace(InMemoryBackend().capabilities, conditional_put=False)
    backend = RecordingBackend(InMemoryBackend(), capabilities=without_conditional_put)
    assert backend.capabilities == without_conditional_put
    assert RecordingBackend(InMemoryBackend()).capabilities == InMemoryBackend().capabilities


class GetOnly(InMemoryBackend):
    """A backend without the optional bounded read."""

    get_at_most = None  # type: ignore[assignment]


async def test_a_bounded_read_is_offered_and_recorded_only_over_a_backend_that_has_one() -> None:
    bounded = RecordingBackend(InMemoryBackend())
    await bounded.put("k", b"abc")
    assert await bounded.get_at_most("k", 3) == b"abc"
    assert bounded.keys("get_at_most") == ["k"]
    assert not reads_bounded(RecordingBackend(GetOnly()))
    assert isinstance(RecordingBackend(GetOnly()), MemoBackendBase)
