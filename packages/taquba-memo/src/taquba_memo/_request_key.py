"""Request keys: content keys that also accept the SDK objects a model call is made of.

An agent loop appends what the SDK returned (an openai ``ChatCompletionMessage``,
a pydantic model of its own, a dataclass) to the messages of its next
request, and :func:`~taquba_memo.content_key` refuses those: they have no
canonical encoding of their own. ``request_key(value)`` is the same RFC 8785
key, after turning each such object, at any depth, into plain data first:

* a pydantic model, or any object with a callable ``model_dump``, becomes
  ``value.model_dump(mode="json", exclude_none=True)``. ``exclude_none``
  drops the optional fields an SDK leaves unset (``refusal=None``,
  ``tool_calls=None``), so a message keys the same whether it came back
  from the SDK or was written as a dict without them, and whether or not a
  newer SDK added more optional fields;
* a dataclass instance becomes ``dataclasses.asdict(value)``.

The result is walked again, so a model inside a dataclass inside a dict is
converted too. Everything else keeps content_key's rules and errors: a plain
request (dicts, lists, strings, numbers) gets exactly its content_key, and a
set, bytes or an arbitrary object is refused with
:class:`~taquba_memo.EncodeError` naming where. A ``model_dump`` or
``asdict`` that fails is an ``EncodeError`` naming where too.
"""

from __future__ import annotations

import dataclasses

from taquba_memo._content import NOT_CONVERTED, key_of
from taquba_memo.errors import EncodeError

__all__ = ["request_key"]


def request_key(value: object, *, namespace: str | None = None) -> str:
    """Return :func:`~taquba_memo.content_key` of ``value``, SDK objects at any depth
    converted to plain data first.

    A pydantic model (or any object with a callable ``model_dump``) counts
    as ``model_dump(mode="json", exclude_none=True)``, a dataclass instance
    as ``dataclasses.asdict``; everything else as in ``content_key``,
    ``namespace`` included.
    """
    return key_of(value, namespace, _plain)


def _plain(value: object, where: str) -> object:
    """``value`` as plain data, or NOT_CONVERTED when it is neither a model nor a dataclass."""
    if isinstance(value, type):
        return NOT_CONVERTED  # a model or dataclass class, not an instance
    model_dump = getattr(value, "model_dump", None)
    try:
        if callable(model_dump):
            return model_dump(mode="json", exclude_none=True)
        if dataclasses.is_dataclass(value):
            return dataclasses.asdict(value)  # type: ignore[arg-type]  # an instance: see above
    except Exception as exc:
        # RecursionError too: asdict of a dataclass that contains itself.
        raise EncodeError(
            f"{where}: {type(value).__name__} could not be converted to plain data: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return NOT_CONVERTED
