"""ObjectStoreBackendBase and BlockingBackendBase: what the adapters on object stores share.

:class:`ObjectStoreBackendBase` is the base of every adapter shipped with
taquba-memo: object names below a base path, the declared capabilities, and
``async with``. :class:`BlockingBackendBase` adds what an adapter on a
synchronous SDK needs (gcs, minio).

A synchronous SDK's calls run on a bounded thread pool (:class:`BlockingRunner`)
so the event loop never blocks; keys become object names under a base path;
an SDK failure is raised through the adapter's one error mapper; after a fork
the child gets a fresh pool and drops its copies of the parent's connections.
The subclass supplies the SDK's exception families, the mapper, and how to
drop and close its client's connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from taquba_memo._checks import UnderBasePath, object_name
from taquba_memo._concurrency import BlockingRunner
from taquba_memo.backend import Capabilities, MemoBackendBase
from taquba_memo.errors import BackendError, InvalidArgumentError

__all__ = ["BlockingBackendBase", "ObjectStoreBackendBase"]

T = TypeVar("T")
ClientT = TypeVar("ClientT")
_BlockingT = TypeVar("_BlockingT", bound="BlockingBackendBase[Any]")


class ObjectStoreBackendBase(MemoBackendBase, UnderBasePath):
    """Base class of an adapter on an object store: names below a base path, declared capabilities.

    The subclass calls ``_use_base_path(base_path)`` and sets ``_capabilities``
    in its ``__init__``; ``async with backend:`` closes it (``aclose``).
    """

    _capabilities: Capabilities

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities


class BlockingBackendBase(ObjectStoreBackendBase, Generic[ClientT]):
    """Base class of a backend whose SDK blocks: its client, a thread pool, names, one error path.

    Subclasses set :attr:`_sdk_errors` (the exceptions a storage call can raise)
    and :attr:`_max_name_bytes`, implement :meth:`_map_error`, and may override
    :meth:`_drop_inherited_connections` (after a fork) and :meth:`_close_client`
    (on :meth:`aclose`, when the backend built its client).
    """

    _sdk_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    """Exception families of the SDK that :meth:`_call` maps; anything else is a bug."""

    _max_name_bytes: ClassVar[int] = 1024
    """Longest object name, base path included, in UTF-8 bytes."""

    def __init__(
        self,
        client: ClientT,
        *,
        base_path: str,
        max_concurrency: int | None,
        pool_size: int,
        thread_name: str,
    ) -> None:
        """``max_concurrency`` None: as many threads as the client's ``pool_size`` connections."""
        self._use_base_path(base_path)
        if max_concurrency is None:
            max_concurrency = pool_size
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise InvalidArgumentError("max_concurrency must be at least 1")
        self._client = client
        self._runner = BlockingRunner(max_concurrency, name=thread_name)
        self._owns_client = False  # the caller's client; see _owning_its_client
        self._closed = False

    @classmethod
    def _owning_its_client(cls: type[_BlockingT], *args: Any, **options: Any) -> _BlockingT:
        """A backend on a client it built, so :meth:`aclose` closes that client too."""
        backend = cls(*args, **options)
        backend._owns_client = True
        return backend

    @property
    def client(self) -> ClientT:
        """The SDK client this backend calls."""
        return self._client

    @property
    def max_concurrency(self) -> int:
        return self._runner.max_workers

    def _object_name(self, key: object) -> str:
        """The object name for ``key``, or :class:`~taquba_memo.InvalidKeyError` before any I/O."""
        return object_name(self._name_prefix, key, max_bytes=self._max_name_bytes)

    def _described(self) -> dict[str, object]:
        """What ``repr`` shows, in order: where the objects are, never a credential."""
        return {"base_path": self._base_path}

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._described().items())
        return f"{type(self).__name__}({shown})"

    def _map_error(self, exc: BaseException, *, operation: str, target: str) -> BackendError:
        """The adapter's error for an SDK failure of ``operation`` on ``target``."""
        raise NotImplementedError

    async def _call(self, operation: str, target: str, fn: Callable[..., T], *args: Any) -> T:
        """Run one SDK call on the pool; raise its failure through :meth:`_map_error`."""
        try:
            return await self._runner.run(fn, *args)
        except self._sdk_errors as exc:
            raise self._map_error(exc, operation=operation, target=target) from exc

    def _drop_inherited_connections(self) -> None:
        """In a forked child: forget the pooled connections copied from the parent."""

    def _close_client(self) -> None:
        """Close the client this backend built (only called when it owns it)."""

    def after_fork(self) -> None:
        """In a forked child: a fresh thread pool, and no connection of the parent's.

        The child's copies of the pooled sockets are dropped (the parent's stay
        open and in use), so the child opens its own connections.
        """
        self._runner.after_fork()
        self._drop_inherited_connections()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Waiting for calls in flight must not block the event loop.
        await asyncio.to_thread(self._runner.close)
        if self._owns_client:
            self._close_client()
