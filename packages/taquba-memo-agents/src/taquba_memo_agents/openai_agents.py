"""openai-agents: a Model wrapper that pays each model call once per step, streams included.

Two ways in, both storing in the step's memo found with
:func:`taquba_memo.current_memo` (an async memo bound with
``taquba_memo.use_memo``, or the ``aio`` view of a sync memo bound with
``taquba_memo.sync.use_memo``, which also serves ``Runner.run_sync``) and
passing everything through outside a ``use_memo`` block:

* :class:`MemoModel`, an ``agents.models.interface.Model`` around another
  one: ``Agent(model=MemoModel(OpenAIChatCompletionsModel(...)))``;
* :class:`MemoModelProvider`, a ``ModelProvider`` whose models are all
  wrapped: ``RunConfig(model_provider=MemoModelProvider())`` (it wraps the
  SDK's default ``MultiProvider`` unless given another). The runner consults
  it only for agents whose ``model`` is a name; wrap ``Model`` objects with
  :class:`MemoModel`.

Keys. The entry key is an occurrence of ``request_key`` over the wrapped
model (its class, ``model`` name and client ``base_url``), the system
instructions, the input items, the model settings, the tools and handoffs
(as the model sees them: name, description, JSON schemas and the other plain
fields; the Python callables are left out), the output schema (name and JSON
schema), ``previous_response_id``, ``conversation_id`` and ``prompt``.
Stripped, because they change between attempts without changing the answer
(:data:`VOLATILE_ARGUMENTS`, :data:`VOLATILE_SETTINGS`,
:data:`VOLATILE_PROVIDER_DATA`):

* the ``tracing`` argument (whether and how the run is traced);
* the model settings ``timeout``, ``extra_headers`` and ``retry``;
* ``response_id`` and ``request_id`` in each input item's ``provider_data``:
  the SDK's record of which provider response an item came from (the
  Chat Completions model stamps it on every output item), a receipt rather
  than part of the conversation.

``previous_response_id`` and ``conversation_id`` are kept: they name
server-side state, and a replayed response carries the very id the first
attempt was given, so the retry sends the same ones. Identical requests
within one attempt are distinct calls (occurrence keys), replayed in the same
order by the retry.

The arguments are bound by the names of the ``Model`` interface, so a
runner passing them by position or by keyword makes the same key.

Values. ``get_response`` stores the SDK's ``ModelResponse`` (output items,
usage, response id) as JSON through a pydantic ``TypeAdapter``;
``stream_response`` records each Responses stream event
(``ResponseCreatedEvent``, ``ResponseTextDeltaEvent``, ...,
``ResponseCompletedEvent``) with ``Memo.get_or_stream`` and replays them on a
retry. A stream left before its end stores nothing.

Errors. An exception from the wrapped model (the openai SDK's
``APIStatusError``, ...) is never stored: the next attempt asks again.

Claims. ``MemoModel(model, claim=ClaimPolicy(lease_s=...))`` (or
``MemoModelProvider(claim=...)``) makes duplicate workers of one step wait
for the first one's answer instead of paying twice.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import AsyncIterator, Mapping
from typing import Any

import taquba_memo
from agents.agent_output import AgentOutputSchemaBase
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.models.interface import Model, ModelProvider
from agents.models.multi_provider import MultiProvider
from agents.retry import ModelRetryAdvice, ModelRetryAdviceRequest
from pydantic import BaseModel, TypeAdapter
from taquba_memo import ClaimPolicy, InvalidValueTypeError, request_key

from taquba_memo_agents import _occurrences
from taquba_memo_agents._arguments import checked_claim
from taquba_memo_agents._one_task import in_one_task
from taquba_memo_agents.openai import _AdapterCodec

__all__ = [
    "VOLATILE_ARGUMENTS",
    "VOLATILE_PROVIDER_DATA",
    "VOLATILE_SETTINGS",
    "MemoModel",
    "MemoModelProvider",
    "request_of",
]

#: Model settings that cannot change the answer, left out of the key.
VOLATILE_SETTINGS = frozenset({"timeout", "extra_headers", "retry"})

#: Fields of an input item's ``provider_data`` that name the response it came from.
VOLATILE_PROVIDER_DATA = frozenset({"response_id", "request_id"})

_PLAIN = (str, int, float, bool, type(None))

_RESPONSE: _AdapterCodec[ModelResponse] = _AdapterCodec(
    TypeAdapter(ModelResponse), "agents.items.ModelResponse"
)
_EVENTS: _AdapterCodec[TResponseStreamEvent] = _AdapterCodec(
    TypeAdapter(TResponseStreamEvent), "ResponseStreamEvent"
)


def _plain(value: Any) -> Any:
    """A tool, handoff or setting as the data the model sees; callables and other objects go."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, Mapping):
        return {str(name): _plain(item) for name, item in value.items() if _kept(item)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value if _kept(item)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            field.name: getattr(value, field.name)
            for field in dataclasses.fields(value)
            if not field.name.startswith("_")
        }
        return {"type": type(value).__name__, **_plain(fields)}
    return type(value).__name__


def _kept(value: Any) -> bool:
    return not callable(value) or isinstance(value, (type, BaseModel))


def _stable_input(items: str | list[TResponseInputItem]) -> Any:
    if isinstance(items, str):
        return items
    stable = []
    for item in _plain(items):
        if isinstance(item, dict) and isinstance(item.get("provider_data"), dict):
            data = item["provider_data"]
            kept = {
                name: value for name, value in data.items() if name not in VOLATILE_PROVIDER_DATA
            }
            item = {**item, "provider_data": kept}
        stable.append(item)
    return stable


def _output_schema(schema: AgentOutputSchemaBase | None) -> Any:
    if schema is None:
        return None
    plain_text = schema.is_plain_text()
    return {
        "name": schema.name(),
        "plain_text": plain_text,
        "schema": None if plain_text else schema.json_schema(),
        "strict": schema.is_strict_json_schema(),
    }


def _model_of(model: Model) -> dict[str, Any]:
    # The server answering: the SDK's client's, or a model's own (LitellmModel has no client).
    client = getattr(model, "_client", None)
    base_url = getattr(client, "base_url", None) or getattr(model, "base_url", None) or ""
    return {
        "class": type(model).__name__,
        "model": str(getattr(model, "model", "")),
        "base_url": str(base_url),
    }


#: Arguments of ``get_response``/``stream_response`` that never change the answer.
VOLATILE_ARGUMENTS = frozenset({"tracing"})

_SIGNATURE = inspect.signature(Model.get_response)  # stream_response's is the same


def _named(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments by the names of the Model interface."""
    bound = _SIGNATURE.bind(None, *args, **kwargs)  # None: self
    return {name: value for name, value in bound.arguments.items() if name != "self"}


def request_of(model: Model, arguments: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
    """What the key is made of: the wrapped model and every argument that shapes the answer."""
    request: dict[str, Any] = {"model": _model_of(model), "stream": stream}
    for name, value in arguments.items():
        if name in VOLATILE_ARGUMENTS:
            continue
        if name == "input":
            request[name] = _stable_input(value)
        elif name == "model_settings":
            settings = _plain(value)
            request[name] = {
                setting: item
                for setting, item in settings.items()
                if setting not in VOLATILE_SETTINGS and setting != "type"
            }
        elif name == "output_schema":
            request[name] = _output_schema(value)
        else:
            request[name] = _plain(value)
    return request


class MemoModel(Model):
    """``model`` with ``get_response`` and ``stream_response`` memoized in the current memo.

    Both take the arguments of the ``Model`` interface, as the runner passes them.
    """

    def __init__(
        self,
        model: Model,
        *,
        claim: ClaimPolicy | None = None,
        namespace: str = "openai-agents/v1",
    ) -> None:
        if not isinstance(model, Model):
            raise InvalidValueTypeError(f"MemoModel wraps an agents Model, not {model!r}")
        checked_claim(claim)
        self.model = model
        self.claim = claim
        self.namespace = namespace

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any], *, stream: bool) -> str:
        request = request_of(self.model, _named(args, kwargs), stream=stream)
        return request_key(request, namespace=self.namespace)

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        async def call() -> ModelResponse:
            return await self.model.get_response(*args, **kwargs)

        memo = taquba_memo.current_memo()
        if memo is None:
            return await call()
        key = self._key(args, kwargs, stream=False)
        response: ModelResponse = await _occurrences.acomputed(
            memo, key, call, codec=_RESPONSE, claim=self.claim
        )
        return response

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        def live() -> AsyncIterator[TResponseStreamEvent]:
            # The SDK's tracing spans set and reset context variables: one task for all.
            return in_one_task(lambda: self.model.stream_response(*args, **kwargs))

        memo = taquba_memo.current_memo()
        if memo is None:
            async for event in self.model.stream_response(*args, **kwargs):
                yield event
            return
        occurrence = memo.occurrence_key(self._key(args, kwargs, stream=True))
        events = memo.get_or_stream(occurrence, live, codec=_EVENTS, claim=self.claim)
        try:
            async for event in events:
                yield event
        finally:  # left early: the recording is dropped at once
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def get_retry_advice(self, request: ModelRetryAdviceRequest) -> ModelRetryAdvice | None:
        return self.model.get_retry_advice(request)

    async def close(self) -> None:
        await self.model.close()


class MemoModelProvider(ModelProvider):
    """A ``ModelProvider`` whose models are :class:`MemoModel` around ``provider``'s."""

    def __init__(
        self, provider: ModelProvider | None = None, *, claim: ClaimPolicy | None = None
    ) -> None:
        self.provider = provider if provider is not None else MultiProvider()
        self.claim = claim

    def get_model(self, model_name: str | None) -> Model:
        return MemoModel(self.provider.get_model(model_name), claim=self.claim)

    async def aclose(self) -> None:
        await self.provider.aclose()
