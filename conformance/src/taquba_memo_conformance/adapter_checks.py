"""Checks each adapter's tests make: SDK exceptions mapped, bad keys refused, a missing container.

The suite proves the protocol through a working backend; these are the
adapter-specific promises around it, which each adapter's tests otherwise
write out again:

* :func:`check_every_exception_mapped`: every exception class the SDK
  defines is in the adapter's table (so a class a newer SDK adds fails until
  someone decides its mapping), is caught, and maps to the error the table says;
* :func:`check_key_refused`: a key the store cannot hold exactly is refused
  with :class:`~taquba_memo.InvalidKeyError` by every operation that takes
  one, before any I/O (combine it with a proxy's request count, or a backend
  on a container that does not exist, to show nothing was sent);
* :func:`check_missing_container`: on a bucket or container that does not
  exist, every operation raises :class:`~taquba_memo.ContainerNotFoundError`,
  never "no such key" (which a store would read as a cache miss).

Each raises ``AssertionError`` naming everything that broke, and returns what
it saw, so a test can assert more (the chained SDK error, a message).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from types import ModuleType

from taquba_memo import ContainerNotFoundError, DeleteManyError, InvalidKeyError, MemoBackend

__all__ = [
    "check_every_exception_mapped",
    "check_key_refused",
    "check_missing_container",
    "exception_classes",
]


def exception_classes(
    module: ModuleType, *, defined_there: bool = True
) -> dict[str, type[BaseException]]:
    """The exception classes of ``module`` by name (only those it defines, unless told not to)."""
    return {
        name: cls
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException)
        and (not defined_there or cls.__module__ == module.__name__)
    }


def _bare(cls: type[BaseException]) -> BaseException:
    return cls("boom")


def check_every_exception_mapped(
    classes: Mapping[str, type[BaseException]],
    expected: Mapping[str, type[BaseException] | None] | Collection[str],
    map_error: Callable[[BaseException], BaseException | None] | None = None,
    *,
    caught: tuple[type[BaseException], ...] | None = None,
    make: Callable[[type[BaseException]], BaseException] = _bare,
) -> dict[str, BaseException | None]:
    """Every class of ``classes`` is named in ``expected``, caught, and mapped as it says.

    ``expected`` maps a class name to the type ``map_error(make(cls))`` must
    return exactly (None: the adapter turns it into no error, as for a
    missing key); where the SDK's classes cannot be made without a real
    answer, it is just the names, and only the table and the catching are
    checked. ``caught`` is the tuple of SDK classes the adapter catches; each
    class must be a subclass of one. Returns the mapped error of each class.
    """
    problems: list[str] = []
    unnamed, stale = sorted(set(classes) - set(expected)), sorted(set(expected) - set(classes))
    if unnamed:
        problems.append(f"the SDK defines classes the table does not name: {unnamed}")
    if stale:
        problems.append(f"the table names classes the SDK no longer defines: {stale}")
    mapped: dict[str, BaseException | None] = {}
    for name, cls in sorted(classes.items()):
        if caught is not None and not issubclass(cls, caught):
            problems.append(f"{name} is not caught by the adapter")
        if map_error is None or not isinstance(expected, Mapping) or name not in expected:
            continue
        error = map_error(make(cls))
        mapped[name] = error
        want = expected[name]
        got = None if error is None else type(error)
        if got is not want:
            problems.append(
                f"{name} maps to {getattr(got, '__name__', got)}, "
                f"not {getattr(want, '__name__', want)}"
            )
    if problems:
        raise AssertionError("; ".join(problems))
    return mapped


def _operations(
    backend: MemoBackend, key: str, batch: list[str]
) -> dict[str, Callable[[], Awaitable[object]]]:
    """Each operation that takes a key, called with ``key`` (``delete_many`` with ``batch``)."""

    async def list_all() -> None:
        async for _ in backend.list(key):
            pass

    return {
        "get": lambda: backend.get(key),
        "put": lambda: backend.put(key, b"v"),
        "put_if_absent": lambda: backend.put(key, b"v", if_absent=True),
        "delete": lambda: backend.delete(key),
        "list": list_all,
        "delete_many": lambda: backend.delete_many(batch),
    }


async def _outcomes(
    calls: Mapping[str, Callable[[], Awaitable[object]]], operations: Iterable[str]
) -> dict[str, Exception | None]:
    """What each of ``operations`` raised (None: it succeeded)."""
    outcomes: dict[str, Exception | None] = {}
    for operation in operations:
        try:
            await calls[operation]()
        except Exception as error:
            outcomes[operation] = error
        else:
            outcomes[operation] = None
    return outcomes


async def check_key_refused(
    backend: MemoBackend, key: str, *, operations: Iterable[str] = ("put", "get", "delete_many")
) -> dict[str, InvalidKeyError]:
    """``key`` is refused with InvalidKeyError by each of ``operations``.

    ``delete_many`` is given ``["fine", key]``: one bad key refuses the whole
    batch, so the good key is not deleted either. Operations: ``put``,
    ``put_if_absent``, ``get``, ``delete``, ``delete_many``.
    """
    outcomes = await _outcomes(_operations(backend, key, ["fine", key]), operations)
    refused: dict[str, InvalidKeyError] = {}
    problems: list[str] = []
    for operation, error in outcomes.items():
        if isinstance(error, InvalidKeyError):
            refused[operation] = error
        elif error is None:
            problems.append(f"{operation}({key!r}) was accepted")
        else:
            problems.append(f"{operation}({key!r}) raised {error!r}, not InvalidKeyError")
    if problems:
        raise AssertionError("; ".join(problems))
    return refused


async def check_missing_container(
    backend: MemoBackend,
    *,
    operations: Iterable[str] = ("get", "put", "put_if_absent", "delete", "list", "delete_many"),
) -> dict[str, Exception]:
    """Each of ``operations`` on ``backend`` (whose container does not exist) says so.

    ``get``, ``put``, ``put_if_absent`` (where the backend declares
    ``conditional_put``), ``delete`` and ``list`` raise ContainerNotFoundError;
    ``delete_many(["k", "j"])`` raises DeleteManyError whose every failure is
    one. Returns the error of each operation (for ``delete_many``, the
    DeleteManyError).
    """
    wanted = [
        operation
        for operation in operations
        if operation != "put_if_absent" or backend.capabilities.conditional_put
    ]
    outcomes = await _outcomes(_operations(backend, "k", ["k", "j"]), wanted)
    errors: dict[str, Exception] = {}
    problems: list[str] = []
    for operation, error in outcomes.items():
        if error is None:
            problems.append(f"{operation} succeeded on a container that does not exist")
            continue
        errors[operation] = error
        if operation != "delete_many":
            if not isinstance(error, ContainerNotFoundError):
                problems.append(f"{operation} raised {error!r}, not ContainerNotFoundError")
        elif not isinstance(error, DeleteManyError):
            problems.append(f"delete_many raised {error!r}, not DeleteManyError")
        else:
            kinds = {key: type(failure) for key, failure in error.failures.items()}
            if kinds != dict.fromkeys(("k", "j"), ContainerNotFoundError):
                problems.append(f"delete_many raised {error!r} with failures {kinds}")
    if problems:
        raise AssertionError("; ".join(problems))
    return errors
