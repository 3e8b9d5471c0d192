"""LangGraph: a node cache in the step's memo, and a cache key that survives a retry.

Two pieces, used together (``builder.compile(cache=MemoNodeCache())`` and
``builder.add_node(..., cache_policy=CachePolicy(key_func=stable_cache_key))``):

* :class:`MemoNodeCache`, a ``langgraph.cache.base.BaseCache``, both halves:
  ``get``/``set`` (``graph.invoke``, ``graph.stream``) use the sync memo
  bound by ``taquba_memo.sync.use_memo``; ``aget``/``aset``
  (``graph.ainvoke``, ``graph.astream``) use ``taquba_memo.current_memo()``
  (an async memo, or a sync memo's ``aio``). ``MemoNodeCache(memo)`` uses
  that memo instead. A node whose writes are in the memo is not run again;
  outside any ``use_memo`` block (and without ``memo``) the cache finds
  nothing and stores nothing, so every node runs. The writes are stored with
  the cache's ``serde`` (LangGraph's ``JsonPlusSerializer`` by default),
  first writer wins; a ``ttl`` is ignored (entries belong to their run and go
  with its retention), and ``clear`` does nothing, for the same reason.
  LangGraph calls ``set`` from a thread of its executor; when the node itself
  ran in such a thread (``graph.stream``, or several nodes in one step), the
  writes come with no memo bound, and ``set`` stores them in the memo that
  ``get`` found bound when it missed that key. Should memos of different
  steps have missed the same key at once (two graphs in one process giving a
  node the same input), it stores in neither and logs a warning: their
  retries pay that node again, rather than one step replay another's answer.
  It remembers the last :data:`MISSES_KEPT` keys missed (a node that fails is
  never ``set``).
* :func:`stable_cache_key`, for ``CachePolicy(key_func=...)``. LangGraph's
  default key pickles the node's input as it is, and that input changes on
  every attempt: ``add_messages`` gives each message a random ``uuid4``
  ``id``, and each model answer carries ``lc_run--<run id>-<n>``, so a retry
  never finds what the first attempt stored. This key is
  ``taquba_memo.request_key`` of the input with every message (a
  ``BaseMessage``, at any depth of dicts, lists, tuples, pydantic models and
  dataclasses) reduced as :func:`taquba_memo_agents.langchain.stable_messages`
  does: without its ``id``, without every other LangChain-generated ``lc_``
  id (content blocks), and without its ``response_metadata`` and
  ``usage_metadata`` (token counts and the provider's response id, which no
  model is sent). Provider ids (tool call ids such as ``call_...``) are kept.
  An input ``request_key`` cannot encode (an object that is neither plain
  data, a pydantic model nor a dataclass; a dict with other than str keys)
  raises its :class:`~taquba_memo.errors.EncodeError`, and the node fails,
  rather than be keyed by what may differ on the retry.

The node cache stores a node's writes after the node returned, from
LangGraph's background executor: a worker killed between a model's answer
and that write pays the answer again. Memoize the model inside the node as
well (:class:`taquba_memo_agents.langchain.MemoChatModel`, or the openai /
httpx integrations), which stores each answer as it arrives and takes a
``claim`` for duplicate workers. A node served from the cache does not run,
so ``stream_mode="messages"`` shows none of its tokens on a retry (its writes
are in ``"updates"`` and ``"values"``); with ``MemoChatModel`` alone the
nodes run again and their models' tokens are replayed, without paying.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import taquba_memo
from langchain_core.messages import BaseMessage
from langgraph.cache.base import BaseCache, FullKey, Namespace
from langgraph.checkpoint.serde.base import SerializerProtocol
from taquba_memo import InvalidValueTypeError, request_key
from taquba_memo import sync as memo_sync
from taquba_memo.errors import DecodeError

from taquba_memo_agents.langchain import stable_messages

__all__ = ["MISSES_KEPT", "MemoNodeCache", "stable_cache_key", "stable_input"]

logger = logging.getLogger(__name__)

#: How many missed keys a cache remembers the memos of, oldest forgotten first.
MISSES_KEPT = 1024


def stable_input(value: Any) -> Any:
    """A node's input as plain data, its messages without what changes between attempts."""
    if isinstance(value, BaseMessage):
        return stable_messages([value])[0]
    if isinstance(value, Mapping):
        return {key: stable_input(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [stable_input(item) for item in value]
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, dict) and not isinstance(value, type):  # a pydantic model
        extra = getattr(value, "model_extra", None) or {}  # extra="allow" fields
        return {name: stable_input(getattr(value, name)) for name in [*fields, *extra]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: stable_input(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def stable_cache_key(value: Any) -> str:
    """``CachePolicy(key_func=stable_cache_key)``: the node input's key, message ids left out."""
    return request_key(stable_input(value), namespace="langgraph-node/v1")


class _TypedCodec:
    """A serde's ``(type, bytes)`` pair as one value: the type, a zero byte, the bytes."""

    def __init__(self, serde: SerializerProtocol) -> None:
        self.serde = serde

    def encode(self, value: Any, /) -> bytes:
        kind, data = self.serde.dumps_typed(value)
        return kind.encode() + b"\x00" + data

    def decode(self, data: bytes, /) -> Any:
        kind, separator, payload = data.partition(b"\x00")
        if not separator:
            raise DecodeError("not a LangGraph cache entry: no type")
        try:
            return self.serde.loads_typed((kind.decode(), payload))
        except Exception as exc:  # what no longer loads is a miss
            raise DecodeError(f"not a LangGraph value: {type(exc).__name__}: {exc}") from exc


class MemoNodeCache(BaseCache[Any]):
    """A LangGraph node cache in the current (or given) memo: each node paid once per step."""

    def __init__(
        self,
        memo: memo_sync.Memo | taquba_memo.Memo | None = None,
        *,
        namespace: str = "langgraph-cache/v1",
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._codec = _TypedCodec(self.serde)
        if memo is not None and not isinstance(memo, (memo_sync.Memo, taquba_memo.Memo)):
            raise InvalidValueTypeError(f"memo must be a Memo or None, not {memo!r}")
        self.memo = memo
        self.namespace = namespace
        # Key -> the memos whose get() missed it, by where they store (see the module).
        self._missed: dict[FullKey, dict[tuple[int, str, int], Any]] = {}
        self._lock = threading.Lock()

    def _entry(self, key: FullKey) -> str:
        namespace, digest = key
        return request_key([list(namespace), digest], namespace=self.namespace)

    def _sync_memo(self) -> memo_sync.Memo | None:
        if self.memo is None:
            return memo_sync.current_memo()
        if not isinstance(self.memo, memo_sync.Memo):
            raise InvalidValueTypeError(
                "a sync graph (invoke, stream) needs a taquba_memo.sync.Memo, not an async Memo"
            )
        return self.memo

    def _async_memo(self) -> taquba_memo.Memo | None:
        if self.memo is None:
            return taquba_memo.current_memo()
        return self.memo.aio if isinstance(self.memo, memo_sync.Memo) else self.memo

    def _decoded(
        self, memo: Any, key: FullKey, data: bytes | None, found: dict[FullKey, Any]
    ) -> None:
        if data is not None:
            try:
                found[key] = self._codec.decode(data)
                return
            except DecodeError:
                pass  # a miss: the node runs, and its writes replace nothing (first writer wins)
        where = (id(memo.store), memo.run_id, memo.step_number)
        with self._lock:
            self._missed.setdefault(key, {})[where] = memo
            while len(self._missed) > MISSES_KEPT:
                del self._missed[next(iter(self._missed))]

    def _memo_that_missed(self, key: FullKey, current: Any) -> Any:
        """The memo to store ``key``'s writes in: ``current``, else the one whose get missed it."""
        with self._lock:
            missed = self._missed.pop(key, {})
        if current is not None or len(missed) <= 1:
            return current if current is not None else next(iter(missed.values()), None)
        logger.warning(
            "LangGraph node writes not stored: %d steps missed the same cache key at once "
            "and the writes came without a bound memo",
            len(missed),
        )
        return None

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        memo = self._sync_memo()
        found: dict[FullKey, Any] = {}
        if memo is not None:
            for key in keys:
                self._decoded(memo, key, memo.get(self._entry(key)), found)
        return found

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        memo = self._async_memo()
        found: dict[FullKey, Any] = {}
        if memo is not None:
            for key in keys:
                self._decoded(memo, key, await memo.get(self._entry(key)), found)
        return found

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        current = self._sync_memo()
        for key, (value, _ttl) in pairs.items():
            memo = self._memo_that_missed(key, current)
            if memo is not None:
                memo.get_or_compute(self._entry(key), lambda value=value: value, codec=self._codec)

    async def aset(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        current = self._async_memo()
        for key, (value, _ttl) in pairs.items():
            memo = self._memo_that_missed(key, current)
            if memo is not None:
                await memo.get_or_compute(
                    self._entry(key), lambda value=value: value, codec=self._codec
                )

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Nothing to do: entries belong to their run and go with its retention."""

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Nothing to do: entries belong to their run and go with its retention."""
