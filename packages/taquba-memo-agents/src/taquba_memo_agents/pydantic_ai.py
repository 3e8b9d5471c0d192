"""pydantic-ai: a model wrapper that pays each model request once per step, streams included.

``MemoModel(model)`` is a pydantic-ai ``WrapperModel``: give it to an
``Agent`` in place of the model (``Agent(MemoModel(OpenAIChatModel(...)))``).
Its ``request`` and ``request_stream`` look for the step's memo with
:func:`taquba_memo.current_memo` (an async memo bound with
``taquba_memo.use_memo``, or the ``aio`` view of a sync memo bound with
``taquba_memo.sync.use_memo``, which also serves ``Agent.run_sync``); outside
any ``use_memo`` block they go straight to the wrapped model.

Keys. The entry key is an occurrence of ``request_key`` over the wrapped
model's ``model_id`` and ``base_url``, the model settings (without
``timeout`` and ``extra_headers``), the request parameters (tool definitions,
output mode) and the messages as pydantic-ai's ``ModelMessagesTypeAdapter``
dumps them, minus the fields pydantic-ai fills anew on every attempt or that
report on an answer and are never sent to a model (:data:`VOLATILE_FIELDS`,
taken off each message and each of its parts): ``timestamp``,
``request_timestamp`` and ``duration`` (the clock), ``run_id`` and
``conversation_id`` (a new uuid per agent run), ``usage`` and
``provider_response_id`` (what an answer reports about itself) and a
request's ``metadata`` (application data, "not sent to the LLM"). Tool call
ids stay: they come from the model's recorded answer and a tool return refers
to them. Identical requests within one attempt are distinct calls (occurrence
keys), replayed in the same order by the retry.

Values. A ``request`` stores its ``ModelResponse`` through
``ModelMessagesTypeAdapter`` (a one-message list), so a replay is the very
response the model gave, ids and timestamps included. A ``request_stream``
records the events of the wrapped model's stream (``PartStartEvent``,
``PartDeltaEvent``, ``PartEndEvent``, ``FinalResultEvent``) as they reach the
consumer, then the final ``ModelResponse``, with ``Memo.get_or_stream``; a
retry replays the same events and ``get()`` returns the recorded response.
A stream left before its end stores nothing.

Errors. An exception from the wrapped model (a ``ModelHTTPError``, ...) is
never stored: the next attempt asks again.

Claims. ``MemoModel(model, claim=ClaimPolicy(lease_s=...))`` makes duplicate
workers of one step wait for the first one's answer instead of paying twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import taquba_memo
from pydantic import TypeAdapter
from pydantic_ai.messages import (
    FinalResultEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    ModelResponseStreamEvent,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage
from taquba_memo import ClaimPolicy, DecodeError, request_key

from taquba_memo_agents import _occurrences
from taquba_memo_agents._arguments import checked_claim
from taquba_memo_agents._one_task import in_one_task

__all__ = ["VOLATILE_FIELDS", "VOLATILE_SETTINGS", "MemoModel", "stable_messages"]

#: Fields of a message, and of its parts, that change between attempts or are never sent.
VOLATILE_FIELDS = frozenset(
    {
        "timestamp",
        "request_timestamp",
        "duration",
        "run_id",
        "conversation_id",
        "usage",
        "provider_response_id",
        "metadata",
    }
)

#: Model settings that cannot change the answer, left out of the key.
VOLATILE_SETTINGS = frozenset({"timeout", "extra_headers"})


def _stable(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    return {name: value for name, value in item.items() if name not in VOLATILE_FIELDS}


def stable_messages(messages: list[ModelMessage]) -> list[Any]:
    """The messages as plain data, without the fields that change between attempts."""
    dumped = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    return [
        {**_stable(message), "parts": [_stable(part) for part in message.get("parts", [])]}
        for message in dumped
    ]


_PARAMETERS: TypeAdapter[ModelRequestParameters] = TypeAdapter(ModelRequestParameters)


def _plain_parameters(parameters: ModelRequestParameters) -> dict[str, Any]:
    """The request parameters (tools, output mode) as JSON, without pydantic-ai's private fields."""
    dumped: dict[str, Any] = _PARAMETERS.dump_python(parameters, mode="json")
    return {name: value for name, value in dumped.items() if not name.startswith("_")}


class _ResponseCodec:
    """A ``ModelResponse`` as pydantic-ai's own JSON of a one-message list."""

    def encode(self, value: ModelResponse, /) -> bytes:
        return ModelMessagesTypeAdapter.dump_json([value])

    def decode(self, data: bytes, /) -> ModelResponse:
        try:
            (message,) = ModelMessagesTypeAdapter.validate_json(bytes(data))
        except ValueError as exc:
            raise DecodeError("stored value is not one pydantic-ai message") from exc
        if not isinstance(message, ModelResponse):
            raise DecodeError(f"stored message is a {type(message).__name__}, not a response")
        return message


_EVENTS: TypeAdapter[ModelResponseStreamEvent] = TypeAdapter(ModelResponseStreamEvent)
_RESPONSE = _ResponseCodec()


class _StreamItemCodec:
    """A recorded stream item: an event (``E`` + its JSON) or the final response (``R`` + JSON)."""

    def encode(self, value: ModelResponseStreamEvent | ModelResponse, /) -> bytes:
        if isinstance(value, ModelResponse):
            return b"R" + _RESPONSE.encode(value)
        return b"E" + _EVENTS.dump_json(value)

    def decode(self, data: bytes, /) -> ModelResponseStreamEvent | ModelResponse:
        data = bytes(data)
        if data[:1] == b"R":
            return _RESPONSE.decode(data[1:])
        if data[:1] != b"E":
            raise DecodeError("stored value is not a recorded pydantic-ai stream item")
        try:
            return _EVENTS.validate_json(data[1:])
        except ValueError as exc:
            raise DecodeError("stored value is not a pydantic-ai stream event") from exc


_STREAM_ITEMS = _StreamItemCodec()


@dataclass
class _RecordedStream(StreamedResponse):
    """A stream whose events come from ``Memo.get_or_stream``: live and recorded, or replayed."""

    _items: AsyncIterator[ModelResponseStreamEvent | ModelResponse] | None = None
    _first: ModelResponseStreamEvent | ModelResponse | None = None
    _response: ModelResponse | None = None
    _model_name: str = ""

    async def _start(self) -> None:
        # Open the wrapped stream now, as the wrapped model does: its errors raise on entry.
        assert self._items is not None
        self._first = await anext(self._items, None)

    def __aiter__(self) -> AsyncIterator[ModelResponseStreamEvent]:
        if self._event_iterator is None:
            self._event_iterator = self._replay()
        return self._event_iterator

    async def _replay(self) -> AsyncIterator[ModelResponseStreamEvent]:
        assert self._items is not None
        item, self._first = self._first, None
        while item is not None:
            if isinstance(item, ModelResponse):
                self._response = item
            else:
                self._parts_manager.apply_event(item)
                if isinstance(item, FinalResultEvent):
                    self.final_result_event = item
                yield item
            item = await anext(self._items, None)
        self._finished = True

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        async for event in self._replay():  # pragma: no cover - __aiter__ never asks
            yield event

    async def close_stream(self) -> None:
        aclose = getattr(self._items, "aclose", None)
        if aclose is not None:
            await aclose()

    def get(self) -> ModelResponse:
        return self._response if self._response is not None else super().get()

    @property
    def usage(self) -> RequestUsage:
        return self._response.usage if self._response is not None else super().usage

    @property
    def model_name(self) -> str:
        return self._response.model_name or "" if self._response else self._model_name

    @property
    def provider_name(self) -> str | None:
        return self._response.provider_name if self._response else None

    @property
    def provider_url(self) -> str | None:
        return self._response.provider_url if self._response else None

    @property
    def timestamp(self) -> datetime:
        return self._response.timestamp if self._response else datetime.now().astimezone()


class MemoModel(WrapperModel):
    """``wrapped`` with ``request`` and ``request_stream`` memoized in the current memo."""

    def __init__(
        self,
        wrapped: Model | str,
        *,
        claim: ClaimPolicy | None = None,
        namespace: str = "pydantic-ai/v1",
    ) -> None:
        checked_claim(claim)
        super().__init__(wrapped)
        self.claim = claim
        self.namespace = namespace

    def _key(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        parameters: ModelRequestParameters,
        *,
        stream: bool,
    ) -> str:
        settings: Mapping[str, Any] = model_settings or {}
        request = {
            "model": self.wrapped.model_id,
            "base_url": self.wrapped.base_url,
            "settings": {k: v for k, v in settings.items() if k not in VOLATILE_SETTINGS},
            "parameters": _plain_parameters(parameters),
            "messages": stable_messages(messages),
            "stream": stream,
        }
        return request_key(request, namespace=self.namespace)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        async def call() -> ModelResponse:
            return await self.wrapped.request(messages, model_settings, model_request_parameters)

        memo = taquba_memo.current_memo()
        if memo is None:
            return await call()
        key = self._key(messages, model_settings, model_request_parameters, stream=False)
        response: ModelResponse = await _occurrences.acomputed(
            memo, key, call, codec=_RESPONSE, claim=self.claim
        )
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        def live() -> AsyncIterator[ModelResponseStreamEvent | ModelResponse]:
            return in_one_task(  # context variables set in the stream live in one task
                lambda: self._live(messages, model_settings, model_request_parameters, run_context)
            )

        memo = taquba_memo.current_memo()
        if memo is None:
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
            return
        key = self._key(messages, model_settings, model_request_parameters, stream=True)
        occurrence = memo.occurrence_key(key)  # streams may interleave: spent at once
        recorded = _RecordedStream(model_request_parameters, _model_name=self.model_name)
        recorded._items = memo.get_or_stream(
            occurrence, live, codec=_STREAM_ITEMS, claim=self.claim
        )
        await recorded._start()
        try:
            yield recorded
        finally:
            await recorded.close_stream()

    async def _live(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        parameters: ModelRequestParameters,
        run_context: Any,
    ) -> AsyncIterator[ModelResponseStreamEvent | ModelResponse]:
        async with self.wrapped.request_stream(
            messages, model_settings, parameters, run_context
        ) as stream:
            async for event in stream:
                yield event
            yield stream.get()
