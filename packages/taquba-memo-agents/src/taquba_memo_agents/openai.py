"""The openai SDK, each model call paid once per step: ``wrap(client)``.

``wrap(client)`` patches an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` in
place and returns the same object, so the type checker, ``isinstance`` and
every other resource stay as they were. Two methods are memoized:
``client.chat.completions.create`` and ``client.responses.create``. Each
call looks for the step's memo bound with ``use_memo``:

* an ``AsyncOpenAI`` reads :func:`taquba_memo.current_memo` (an async memo,
  or the ``aio`` view of a bound sync memo);
* an ``OpenAI`` reads :func:`taquba_memo.sync.current_memo`, so it needs a
  sync memo bound with ``taquba_memo.sync.use_memo`` (with an async memo
  bound it raises :class:`~taquba_memo.InvalidValueTypeError` rather than
  paying again on every retry: a sync call cannot wait on an async memo
  without blocking its loop).

Outside any ``use_memo`` block the call goes straight to the SDK.

Keys. The entry key is ``occurrence_key(request_key(request))``: the
request is the endpoint, the client's ``base_url`` and every argument given,
minus those that cannot change the answer: ``timeout`` and
``extra_headers`` (authentication, tracing and idempotency headers differ
per attempt). Arguments left out (``openai.omit``, ``NOT_GIVEN``) count as
absent, and SDK objects passed back in ``messages`` (a
``ChatCompletionMessage``) key as their JSON without the unset fields, so
``[first.choices[0].message, ...]`` keys the same on every attempt. Two
identical requests in one attempt are two entries (``#0``, ``#1``), replayed
in the same order by the retry; ``stream`` is part of the key. A call that
raises (an error response, a stream that fails to open) gives its number
back: the caller's own retry of it in the same task or thread is still the
same occurrence, so the step's retry replays the answer it finally got.

Values. A non-streamed call returns the SDK's own type (``ChatCompletion``,
``Response``), stored as its JSON (``model_dump_json``) and rebuilt with
``model_validate_json``. ``stream=True`` returns a :class:`MemoStream` (or
:class:`AsyncMemoStream`) that iterates like the SDK's ``Stream``, closes
with ``close()`` and works as a context manager; its chunks are recorded
with ``Memo.get_or_stream`` and replayed on a retry. As with the SDK, the
request is sent (and an error raised) when ``create`` is called, before the
first chunk is read. A stream closed early stores nothing (the next attempt
streams again). Unlike the SDK's stream it has no ``response`` attribute: a
replay has no HTTP response.

Errors. An error response raises the SDK's own error (``APIStatusError``,
``RateLimitError``, ...) and stores nothing, so the next attempt asks again.

Claims. ``wrap(client, claim=ClaimPolicy(lease_s=...))`` makes duplicate
workers of one step wait for the first one's answer instead of paying twice
(needs a backend with ``conditional_put``).

Copies. ``client.with_options(...)`` and ``client.copy()`` build new
clients that are not wrapped: wrap them too. Wrapping twice is harmless.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import taquba_memo
import taquba_memo.sync
from pydantic import BaseModel, TypeAdapter
from taquba_memo import ClaimPolicy, InvalidValueTypeError, PydanticCodec, request_key

from taquba_memo_agents import _occurrences
from taquba_memo_agents._arguments import checked_claim

__all__ = ["AsyncMemoStream", "MemoStream", "VOLATILE_ARGUMENTS", "request_of", "wrap"]

#: Arguments of ``create`` that never change the answer, left out of the key.
VOLATILE_ARGUMENTS = frozenset({"timeout", "extra_headers"})

_WRAPPED = "_taquba_memo_wrapped"

ChunkT = TypeVar("ChunkT")
ClientT = TypeVar("ClientT")


class _AdapterCodec(Generic[ChunkT]):
    """Values of any pydantic-validated type (a union of events), stored as their JSON."""

    def __init__(self, adapter: TypeAdapter[ChunkT], name: str) -> None:
        self._adapter = adapter
        self._name = name

    def encode(self, value: ChunkT, /) -> bytes:
        return self._adapter.dump_json(value)

    def decode(self, data: bytes, /) -> ChunkT:
        try:
            return self._adapter.validate_json(bytes(data))
        except ValueError as exc:
            message = f"stored value does not validate as {self._name}"
            raise taquba_memo.DecodeError(message) from exc

    def __repr__(self) -> str:
        return f"_AdapterCodec({self._name})"


def _is_given(value: object) -> bool:
    import openai

    return not isinstance(value, (openai.NotGiven, openai.Omit))


def _plain_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as given, one-shot iterables (a generator of messages) made lists."""
    plain: dict[str, Any] = {}
    for name, value in arguments.items():
        if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping, list)):
            value = list(value)
        plain[name] = value
    return plain


def request_of(endpoint: str, base_url: object, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """What the key is made of: endpoint, base URL, and the arguments that shape the answer."""
    return {
        "endpoint": endpoint,
        "base_url": str(base_url),
        "arguments": {
            name: value
            for name, value in arguments.items()
            if name not in VOLATILE_ARGUMENTS and _is_given(value)
        },
    }


class MemoStream(Generic[ChunkT]):
    """A memoized ``stream=True`` call: iterate it like the SDK's ``Stream``."""

    def __init__(self, chunks: Iterator[ChunkT]) -> None:
        self._chunks = chunks
        self._first: list[ChunkT] = []
        # Send the request now, as the SDK does: its errors raise from create().
        with contextlib.suppress(StopIteration):
            self._first.append(next(chunks))

    def __iter__(self) -> Iterator[ChunkT]:
        return self

    def __next__(self) -> ChunkT:
        if self._first:
            return self._first.pop()
        return next(self._chunks)

    def close(self) -> None:
        """Stop reading; a stream closed before its end stores nothing."""
        self._first.clear()
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> MemoStream[ChunkT]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncMemoStream(Generic[ChunkT]):
    """A memoized ``stream=True`` call of an async client: iterate it like ``AsyncStream``."""

    def __init__(self, chunks: AsyncIterator[ChunkT]) -> None:
        self._chunks = chunks
        self._first: list[ChunkT] = []

    async def _start(self) -> AsyncMemoStream[ChunkT]:
        # Send the request now, as the SDK does: its errors raise from create().
        with contextlib.suppress(StopAsyncIteration):
            self._first.append(await self._chunks.__anext__())
        return self

    def __aiter__(self) -> AsyncMemoStream[ChunkT]:
        return self

    async def __anext__(self) -> ChunkT:
        if self._first:
            return self._first.pop()
        return await self._chunks.__anext__()

    async def close(self) -> None:
        """Stop reading; a stream closed before its end stores nothing."""
        self._first.clear()
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncMemoStream[ChunkT]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _Endpoint:
    """One memoized ``create``: its name in the key and the codecs of its answers."""

    def __init__(self, name: str, value: type[BaseModel], chunk: Any, chunk_name: str) -> None:
        self.name = name
        self.codec: PydanticCodec[Any] = PydanticCodec(value)
        self.chunk_codec: _AdapterCodec[Any] = _AdapterCodec(TypeAdapter(chunk), chunk_name)


@functools.cache  # the stream types' TypeAdapters are costly to build, and never change
def _endpoints() -> dict[str, _Endpoint]:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent

    return {
        "chat.completions": _Endpoint(
            "chat.completions", ChatCompletion, ChatCompletionChunk, "ChatCompletionChunk"
        ),
        "responses": _Endpoint("responses", Response, ResponseStreamEvent, "ResponseStreamEvent"),
    }


def _sync_create(
    create: Callable[..., Any], endpoint: _Endpoint, base_url: object, claim: ClaimPolicy | None
) -> Callable[..., Any]:
    def memoized_create(**arguments: Any) -> Any:
        memo = taquba_memo.sync.current_memo()
        if memo is None:
            return create(**arguments)
        arguments = _plain_arguments(arguments)
        request = request_key(request_of(endpoint.name, base_url, arguments), namespace="openai")
        if arguments.get("stream") is True:

            def chunks() -> Iterator[Any]:
                with create(**arguments) as stream:
                    yield from stream

            # Spent once the stream opened: a failure to open gives its number back.
            return _occurrences.settled(
                memo,
                request,
                lambda key: MemoStream(
                    memo.get_or_stream(key, chunks, codec=endpoint.chunk_codec, claim=claim)
                ),
            )
        return _occurrences.computed(
            memo, request, lambda: create(**arguments), codec=endpoint.codec, claim=claim
        )

    return memoized_create


def _async_create(
    create: Callable[..., Any], endpoint: _Endpoint, base_url: object, claim: ClaimPolicy | None
) -> Callable[..., Any]:
    async def memoized_create(**arguments: Any) -> Any:
        memo = taquba_memo.current_memo()
        if memo is None:
            return await create(**arguments)
        arguments = _plain_arguments(arguments)
        request = request_key(request_of(endpoint.name, base_url, arguments), namespace="openai")
        if arguments.get("stream") is True:

            async def chunks() -> AsyncIterator[Any]:
                stream = await create(**arguments)
                async with stream:
                    async for chunk in stream:
                        yield chunk

            # Spent once the stream opened: a failure to open gives its number back.
            return await _occurrences.asettled(
                memo,
                request,
                lambda key: AsyncMemoStream(
                    memo.get_or_stream(key, chunks, codec=endpoint.chunk_codec, claim=claim)
                )._start(),
            )

        async def call() -> Any:
            return await create(**arguments)

        return await _occurrences.acomputed(memo, request, call, codec=endpoint.codec, claim=claim)

    return memoized_create


def wrap(client: ClientT, *, claim: ClaimPolicy | None = None) -> ClientT:
    """Memoize ``client.chat.completions.create`` and ``client.responses.create`` in the
    current memo, and return ``client`` itself (patched in place).

    ``client`` is an ``openai.OpenAI`` (it uses the sync current memo) or an
    ``openai.AsyncOpenAI`` (the async one); see the module documentation
    for keys, streams and errors. Raises
    :class:`~taquba_memo.InvalidValueTypeError` for anything else, and for
    a ``claim`` that is not a :class:`~taquba_memo.ClaimPolicy`.
    """
    import openai

    checked_claim(claim)
    if isinstance(client, openai.OpenAI):
        patch = _sync_create
    elif isinstance(client, openai.AsyncOpenAI):
        patch = _async_create
    else:
        raise InvalidValueTypeError(
            f"wrap takes an openai.OpenAI or openai.AsyncOpenAI, not {type(client).__name__}"
        )
    if getattr(client, _WRAPPED, False):
        return client
    sdk: Any = client
    endpoints = _endpoints()
    for resource, endpoint in (
        (sdk.chat.completions, endpoints["chat.completions"]),
        (sdk.responses, endpoints["responses"]),
    ):
        resource.create = patch(resource.create, endpoint, sdk.base_url, claim)
    setattr(client, _WRAPPED, True)
    return client
