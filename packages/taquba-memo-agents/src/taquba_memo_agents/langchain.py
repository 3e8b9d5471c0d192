"""langchain-core: an LLM cache and a chat-model wrapper that pay each model call once per step.

Two ways in, both storing in the step's memo (``taquba_memo.use_memo`` /
``taquba_memo.sync.use_memo``) and passing everything through outside one:

* :class:`MemoCache`, a langchain ``BaseCache`` (``model.cache = MemoCache()``
  or ``set_llm_cache(MemoCache())``), both halves: ``lookup``/``update`` use
  the sync memo bound by ``taquba_memo.sync.use_memo``; ``alookup``/``aupdate``
  use ``taquba_memo.current_memo()`` (an async memo, or a sync memo's ``aio``).
  LangChain consults its cache in ``invoke``/``ainvoke``/``batch`` only:
  ``stream()`` and ``astream()`` skip it, so a streamed call is paid again on
  every retry.
* :class:`MemoChatModel`, a chat model around another one
  (``MemoChatModel(inner=ChatOpenAI(...))``), which memoizes ``invoke``,
  ``ainvoke`` *and* ``stream``/``astream`` (the chunks are recorded and
  replayed through ``get_or_stream``).
  ``MemoChatModel(inner=..., claim=ClaimPolicy(lease_s=30))`` makes a
  duplicate worker of the step wait for the first one's answer and replay it.

Keys. The request is keyed from the messages and the model's ``llm_string``
(its serialized configuration and call parameters) with what changes between
attempts removed:

* each message's ``id``: LangChain sets ``lc_run--<run id>-<n>`` on every
  message a model returns (a new run id per attempt), and LangGraph's
  ``add_messages`` gives every message a random ``uuid4``;
* every other ``id`` that LangChain generated (``lc_``-prefixed: content
  block ids). Provider ids (tool call ids such as ``call_...``) are kept:
  they come from the model's recorded answer, and a ``ToolMessage`` refers
  to them;
* each message's ``response_metadata`` and ``usage_metadata``: what an answer
  reports about itself (token counts, the provider's response id), which no
  provider receives back, and which LangChain rewrites on a cache hit
  (``usage_metadata`` gains ``total_cost: 0``), so a replayed answer would
  key its next request differently from the paid one.

Identical requests within one attempt are distinct calls (occurrence keys),
replayed in the same order by the retry. An exception is never stored.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import taquba_memo
from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumpd, dumps, loads
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult, Generation
from taquba_memo import ClaimPolicy, request_key
from taquba_memo import sync as memo_sync
from taquba_memo.errors import DecodeError

from taquba_memo_agents import _occurrences

__all__ = ["MemoCache", "MemoChatModel", "stable_messages", "stable_prompt"]

#: What a model's answer reports about itself, never sent back to a model; a LangChain
#: cache hit rewrites it (``usage_metadata`` gains ``total_cost: 0``).
RECEIPTS = ("response_metadata", "usage_metadata")

#: LangChain's prefix for the ids it generates (``LC_AUTO_PREFIX``; run ids start ``lc_run-``).
GENERATED_ID_PREFIX = "lc_"


def _without_volatile_ids(value: Any, *, message: bool = False) -> Any:
    if isinstance(value, list):
        return [_without_volatile_ids(item) for item in value]
    if not isinstance(value, dict):
        return value
    if value.get("lc") == 1 and value.get("type") == "constructor" and "kwargs" in value:
        # A serialized object: its "id" is the class path; its kwargs' "id" a message id.
        kwargs = _without_volatile_ids(value["kwargs"], message=True)
        for name in RECEIPTS:
            kwargs.pop(name, None)
        return {**value, "kwargs": kwargs}
    return {
        key: _without_volatile_ids(item)
        for key, item in value.items()
        if not (
            key == "id"
            and (message or (isinstance(item, str) and item.startswith(GENERATED_ID_PREFIX)))
        )
    }


def stable_messages(messages: Sequence[BaseMessage]) -> list[Any]:
    """The messages as plain data, without the ids that change between attempts."""
    return [_without_volatile_ids(dumpd(message)) for message in messages]


def stable_prompt(prompt: str) -> Any:
    """A cache's ``prompt`` (serialized messages, or an LLM's text) without volatile ids."""
    try:
        return _without_volatile_ids(json.loads(prompt))
    except ValueError:
        return prompt  # a plain LLM's text prompt


class _LangChainCodec:
    """A LangChain-serializable value (generations, chunks) as ``langchain_core.load`` JSON."""

    def encode(self, value: Any, /) -> bytes:
        return dumps(value).encode()

    def decode(self, data: bytes, /) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LangChainBetaWarning)
                return loads(data.decode(), allowed_objects="core")
        except Exception as exc:  # what no longer loads is a miss
            raise DecodeError(f"not a LangChain value: {type(exc).__name__}: {exc}") from exc


class _ChatResultCodec(_LangChainCodec):
    def encode(self, value: Any, /) -> bytes:
        return super().encode({"generations": value.generations, "llm_output": value.llm_output})

    def decode(self, data: bytes, /) -> Any:
        return ChatResult(**super().decode(data))


_GENERATIONS = _LangChainCodec()
_CHAT_RESULT = _ChatResultCodec()


class MemoCache(BaseCache):
    """A LangChain LLM cache in the current memo: each call paid once per step (see the module)."""

    def __init__(self, namespace: str = "langchain-cache/v1") -> None:
        self.namespace = namespace

    def _key(self, prompt: str, llm_string: str) -> str:
        return request_key(
            {"prompt": stable_prompt(prompt), "llm": llm_string}, namespace=self.namespace
        )

    def lookup(self, prompt: str, llm_string: str) -> Sequence[Generation] | None:
        memo = memo_sync.current_memo()
        if memo is None:
            return None
        key = self._key(prompt, llm_string)
        data = memo.get(_occurrences.take(memo, key))
        return self._found(memo, key, data)

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        memo = memo_sync.current_memo()
        if memo is None:
            return
        key = self._key(prompt, llm_string)
        generations = list(return_val)
        _occurrences.computed(memo, key, lambda: generations, codec=_GENERATIONS)

    def clear(self, **kwargs: Any) -> None:
        """Nothing to do: entries belong to their run and go with its retention."""

    async def alookup(self, prompt: str, llm_string: str) -> Sequence[Generation] | None:
        memo = taquba_memo.current_memo()
        if memo is None:
            return None
        key = self._key(prompt, llm_string)
        data = await memo.get(_occurrences.take(memo, key))
        return self._found(memo, key, data)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        memo = taquba_memo.current_memo()
        if memo is None:
            return
        key = self._key(prompt, llm_string)
        generations = list(return_val)
        await _occurrences.acomputed(memo, key, lambda: generations, codec=_GENERATIONS)

    async def aclear(self, **kwargs: Any) -> None:
        """Nothing to do: entries belong to their run and go with its retention."""

    @staticmethod
    def _found(memo: Any, key: str, data: bytes | None) -> Sequence[Generation] | None:
        if data is None:
            return None  # update() stores under the same occurrence
        try:
            generations: list[Generation] = _GENERATIONS.decode(data)
        except DecodeError:
            return None
        _occurrences.settle(memo, key)
        return generations


class MemoChatModel(BaseChatModel):
    """``inner`` with every call memoized in the current memo, streams included (see the module)."""

    inner: BaseChatModel
    namespace: str = "langchain-chat/v1"
    claim: ClaimPolicy | None = None

    @property
    def _llm_type(self) -> str:
        return f"memo-{self.inner._llm_type}"

    def _key(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: Any) -> str:
        return request_key(
            {
                "messages": stable_messages(messages),
                "llm": self.inner._get_llm_string(stop=stop, **kwargs),
            },
            namespace=self.namespace,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        def call() -> ChatResult:
            return self.inner._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

        memo = memo_sync.current_memo()
        if memo is None:
            return call()
        key = self._key(messages, stop, kwargs)
        return _occurrences.computed(memo, key, call, codec=_CHAT_RESULT, claim=self.claim)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        async def call() -> ChatResult:
            return await self.inner._agenerate(
                messages, stop=stop, run_manager=run_manager, **kwargs
            )

        memo = taquba_memo.current_memo()
        if memo is None:
            return await call()
        key = self._key(messages, stop, kwargs)
        result: ChatResult = await _occurrences.acomputed(
            memo, key, call, codec=_CHAT_RESULT, claim=self.claim
        )
        return result

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        def call() -> Iterator[ChatGenerationChunk]:
            return self.inner._stream(messages, stop=stop, run_manager=run_manager, **kwargs)

        memo = memo_sync.current_memo()
        if memo is None:
            yield from call()
            return
        key = self._key(messages, stop, kwargs)
        occurrence = memo.occurrence_key(key)  # streams may interleave: spent at once
        yield from memo.get_or_stream(occurrence, call, codec=_GENERATIONS, claim=self.claim)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        def call() -> AsyncIterator[ChatGenerationChunk]:
            return self.inner._astream(messages, stop=stop, run_manager=run_manager, **kwargs)

        memo = taquba_memo.current_memo()
        if memo is None:
            async for chunk in call():
                yield chunk
            return
        key = self._key(messages, stop, kwargs)
        occurrence = memo.occurrence_key(key)  # streams may interleave: spent at once
        async for chunk in memo.get_or_stream(
            occurrence, call, codec=_GENERATIONS, claim=self.claim
        ):
            yield chunk
