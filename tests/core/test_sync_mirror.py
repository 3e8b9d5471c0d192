"""taquba_memo.sync mirrors the async API member by member, through one small mapping.

For every public member of the async ``MemoStore`` and ``Memo`` (their
constructors too) and for ``open_store``, ``use_memo`` and ``current_memo``,
the sync twin has the same name, kind, parameters (names, kinds, defaults),
annotations, overloads and docstring summary, once the async side is put through this mapping, and
through nothing else:

- names: ``aclose`` is ``close``; ``closed`` exists on the sync store only, and
  ``aio`` on the sync memo only (its async view: the async memo has no sync one);
- kinds: a coroutine function or an async generator function is a plain
  function (a property stays a property);
- annotations: ``taquba_memo.MemoStore`` and ``taquba_memo.Memo`` are their
  sync twins (so is ``MemoHost``, what an async memo knows of its store),
  ``AsyncIterator[X]`` is ``Iterator[X]``, and a plain function returning
  ``Awaitable[X]`` or ``Coroutine[..., X]`` returns ``X``; type variables
  compare by name (each module declares its own ``T``);
- docstrings: the summary (first paragraph) is the same, each cross-reference
  compared by the name it shows (``~taquba_memo.MemoStore`` is ``MemoStore``).

Callbacks need no rule: both APIs take sync or async ones (a sync one runs
in the caller's thread in the sync API, an async one on the store's loop).
Annotations are read with ``typing.get_type_hints`` and parameters with
``inspect.signature``, so the comparison sees what type checkers see.
"""

from __future__ import annotations

import collections.abc
import inspect
import re
import sys
import types
from collections.abc import Callable
from typing import Any, Generic, TypeVar, Union, get_args, get_origin, get_type_hints

import pytest
import taquba_memo
from taquba_memo import sync
from taquba_memo._memo import MemoHost

if sys.version_info >= (3, 11):
    from typing import get_overloads
else:  # typing.overload records nothing before 3.11

    def get_overloads(func: Callable[..., Any]) -> list[Callable[..., Any]]:
        return []


MIRRORED_CLASSES: dict[type, type] = {
    taquba_memo.MemoStore: sync.MemoStore,
    taquba_memo.Memo: sync.Memo,
}
MIRRORED_FUNCTIONS = {
    name: (getattr(taquba_memo, name), getattr(sync, name))
    for name in ("open_store", "use_memo", "current_memo")
}

RENAMED = {"aclose": "close"}
SYNC_ONLY = {"closed", "aio"}
SYNC_KIND = {
    "coroutine function": "function",
    "async generator function": "function",
    "function": "function",
    "property": "property",
}
AWAITABLES = (collections.abc.Awaitable, collections.abc.Coroutine)
SYNC_TYPE: dict[Any, Any] = {
    **MIRRORED_CLASSES,
    # What an async Memo knows of its store (memo.py cannot import store.py): the sync
    # Memo's store is the sync MemoStore itself.
    MemoHost: sync.MemoStore,
    collections.abc.AsyncIterator: collections.abc.Iterator,
}


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def kind(member: object) -> str:
    if isinstance(member, property):
        return "property"
    if inspect.iscoroutinefunction(member):
        return "coroutine function"
    if inspect.isasyncgenfunction(member):
        return "async generator function"
    if inspect.isfunction(member):
        return "function"
    return type(member).__name__


def bound_type_variables(cls: type | None) -> dict[Any, Any]:
    """What ``cls`` binds its generic bases' type variables to: ``{StoreT: MemoStore}``."""
    bound: dict[Any, Any] = {}
    for klass in cls.__mro__ if cls is not None else ():
        for base in getattr(klass, "__orig_bases__", ()):
            origin = get_origin(base)
            if origin is not Generic:
                bound.update(zip(origin.__parameters__, get_args(base), strict=True))
    return bound


def shape(annotation: Any, to_sync: dict[Any, Any], bound: dict[Any, Any]) -> object:
    """``annotation`` as comparable data, with ``to_sync`` applied at every depth."""
    if isinstance(annotation, list):  # the parameters of a Callable
        return tuple(shape(item, to_sync, bound) for item in annotation)
    if isinstance(annotation, TypeVar):
        if annotation in bound:
            return shape(bound[annotation], to_sync, bound)
        return ("type variable", annotation.__name__)
    origin = get_origin(annotation)
    if origin is None:
        return to_sync.get(annotation, annotation)
    arguments = tuple(shape(argument, to_sync, bound) for argument in get_args(annotation))
    if origin in (Union, types.UnionType):
        return ("union", frozenset(arguments))
    return (to_sync.get(origin, origin), arguments)


def summary(doc: str | None) -> str:
    """The first paragraph of ``doc`` on one line, cross-references by the name they show."""
    first = inspect.cleandoc(doc or "").split("\n\n")[0]
    return re.sub(r"(:\w+:)`~?(?:[\w.]*\.)?(\w+)`", r"\1`\2`", " ".join(first.split()))


def signature(
    function: Callable[..., Any], to_sync: dict[Any, Any], bound: dict[Any, Any]
) -> dict[str, object]:
    hints = get_type_hints(function)
    returns = hints.get("return")
    if to_sync and kind(function) == "function" and get_origin(returns) in AWAITABLES:
        returns = get_args(returns)[-1]
    return {
        "parameters": [
            (
                parameter.name,
                parameter.kind.name,
                repr(parameter.default),
                shape(hints.get(parameter.name), to_sync, bound),
            )
            for parameter in inspect.signature(function).parameters.values()
        ],
        "returns": shape(returns, to_sync, bound),
    }


def describe(member: Any, cls: type | None, *, mirrored: bool) -> dict[str, object]:
    """What a member promises: its kind, signature, overloads and docstring summary.

    With ``mirrored``, ``member`` is an async one, described as its sync twin must be.
    """
    to_sync = SYNC_TYPE if mirrored else {}
    bound = bound_type_variables(cls)
    member_kind = kind(member)
    function: Callable[..., Any] | None = member.fget if isinstance(member, property) else member
    assert function is not None
    return {
        "kind": SYNC_KIND.get(member_kind, member_kind) if mirrored else member_kind,
        "signature": signature(function, to_sync, bound),
        "overloads": [signature(overload, to_sync, bound) for overload in get_overloads(function)],
        "summary": summary(member.__doc__),
    }


MEMBERS = [
    pytest.param(async_cls, name, id=f"{async_cls.__name__}.{name}")
    for async_cls in MIRRORED_CLASSES
    for name in sorted(public_names(async_cls) | {"__init__"})
]


@pytest.mark.parametrize(("async_cls", "name"), MEMBERS)
def test_each_sync_member_is_its_async_twin_through_the_mapping(async_cls: type, name: str) -> None:
    sync_cls = MIRRORED_CLASSES[async_cls]
    async_member = inspect.getattr_static(async_cls, name)
    sync_member = inspect.getattr_static(sync_cls, RENAMED.get(name, name))
    assert describe(sync_member, sync_cls, mirrored=False) == describe(
        async_member, async_cls, mirrored=True
    )


@pytest.mark.parametrize("name", MIRRORED_FUNCTIONS)
def test_each_sync_function_is_its_async_twin_through_the_mapping(name: str) -> None:
    async_function, sync_function = MIRRORED_FUNCTIONS[name]
    assert describe(sync_function, None, mirrored=False) == describe(
        async_function, None, mirrored=True
    )


@pytest.mark.parametrize(("async_cls", "sync_cls"), MIRRORED_CLASSES.items())
def test_the_sync_classes_add_nothing_but_the_listed_members(
    async_cls: type, sync_cls: type
) -> None:
    renamed = {RENAMED.get(name, name) for name in public_names(async_cls)}
    assert public_names(sync_cls) - renamed <= SYNC_ONLY
    assert sorted(sync.__all__) == sorted(
        [cls.__name__ for cls in MIRRORED_CLASSES.values()] + list(MIRRORED_FUNCTIONS)
    )


def test_every_rule_of_the_mapping_names_something_that_exists() -> None:
    assert all(hasattr(taquba_memo.MemoStore, name) for name in RENAMED)
    assert all(
        hasattr(sync.MemoStore, name) or hasattr(sync.Memo, name)
        for name in [*RENAMED.values(), *SYNC_ONLY]
    )


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.get_overloads is new in 3.11")
def test_the_overloads_are_compared_too() -> None:
    assert len(get_overloads(sync.Memo.get_or_compute)) == 2
    assert len(get_overloads(taquba_memo.Memo.content_put)) == 2


class TestTheComparisonSeesDifferences:
    """The mapping is no blanket: what it does not name still has to match."""

    def test_a_narrower_parameter_type(self) -> None:
        class Narrower:
            def put(self, key: str, value: bytes, *, if_absent: bool = False) -> bool:
                """Store ``value`` (any bytes-like object) for ``key`` and return True."""
                raise NotImplementedError

        assert describe(Narrower.put, Narrower, mirrored=False) != describe(
            taquba_memo.Memo.put, taquba_memo.Memo, mirrored=True
        )

    def test_an_async_class_left_in_a_sync_signature(self) -> None:
        class LeftAsync:
            def new_memo(self, run_id: str, step_number: int) -> taquba_memo.Memo:
                """Return a :class:`Memo` bound to ``(run_id, step_number)``."""
                raise NotImplementedError

        assert describe(LeftAsync.new_memo, LeftAsync, mirrored=False) != describe(
            taquba_memo.MemoStore.new_memo, taquba_memo.MemoStore, mirrored=True
        )

    def test_a_coroutine_left_in_the_sync_api(self) -> None:
        assert describe(taquba_memo.Memo.get, taquba_memo.Memo, mirrored=False) != describe(
            taquba_memo.Memo.get, taquba_memo.Memo, mirrored=True
        )

    def test_but_a_plain_function_returning_an_awaitable_is_one_returning_its_result(
        self,
    ) -> None:
        class ReturnsAnAwaitable:
            def get(self, key: str) -> collections.abc.Awaitable[bytes | None]:
                """Return the value."""
                raise NotImplementedError

        class Returns:
            def get(self, key: str) -> bytes | None:
                """Return the value."""
                raise NotImplementedError

        assert describe(Returns.get, Returns, mirrored=False) == describe(
            ReturnsAnAwaitable.get, ReturnsAnAwaitable, mirrored=True
        )
