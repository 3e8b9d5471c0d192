"""open_store(url): a MemoStore from a URL, with adapters found by entry point.

Built in:

* ``memory://``: a fresh :class:`~taquba_memo.InMemoryBackend` on every open
  (nothing is shared between two opens, nor kept after close).
* ``file:///absolute/path``: a :class:`~taquba_memo.LocalFileBackend` rooted at
  the path (percent-decoded; ``file://localhost/path`` is accepted too).

Every other scheme comes from an installed adapter package. An adapter
registers, in the entry point group ``taquba_memo.backends``, a callable
``open_url(url: str) -> MemoBackend`` under the plain scheme (``s3``) and
under ``<scheme>+<adapter>`` (``s3+obstore``). The full URL, as given, is
passed to it; query parameters, credentials and endpoints are the adapter's
business (see each adapter's README). The adapters of this project:

======================  ===========================================
package                 entry point names
======================  ===========================================
taquba-memo-obstore     s3, gs, az, s3+obstore, gs+obstore, az+obstore
taquba-memo-gcs         gs, gs+gcs
taquba-memo-azure       az, az+azure
taquba-memo-minio       minio, s3+minio
======================  ===========================================

Resolution, deterministic whatever the install order:

1. ``<scheme>+<adapter>://`` uses exactly that entry point.
2. A plain ``<scheme>://`` provided by one installed package uses it.
3. If several packages provide it, taquba-memo-obstore wins when it is
   one of them; otherwise :class:`~taquba_memo.InvalidURLError` lists the
   ``<scheme>+<adapter>`` spellings to choose from.
4. If no installed package provides it,
   :class:`~taquba_memo.AdapterNotInstalledError` names the packages to
   install.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taquba_memo._backends import InMemoryBackend, LocalFileBackend
from taquba_memo._redact import redact_url, scrub_exception
from taquba_memo._store import MemoStore
from taquba_memo.backend import MemoBackend
from taquba_memo.errors import (
    AdapterNotInstalledError,
    InvalidArgumentError,
    InvalidURLError,
    InvalidValueTypeError,
    MemoError,
)

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["ENTRY_POINT_GROUP", "open_backend", "open_store", "resolve_scheme"]

ENTRY_POINT_GROUP = "taquba_memo.backends"

# The adapter a plain scheme prefers when several installed packages provide it.
PREFERRED_DISTRIBUTION = "taquba-memo-obstore"

# What to suggest installing for a scheme that no installed package provides.
_PACKAGES_FOR_SCHEME: dict[str, tuple[str, ...]] = {
    "s3": ("taquba-memo-obstore", "taquba-memo-minio"),
    "gs": ("taquba-memo-obstore", "taquba-memo-gcs"),
    "az": ("taquba-memo-obstore", "taquba-memo-azure"),
    "minio": ("taquba-memo-minio",),
}

_BUILT_IN = ("memory", "file")
_ADAPTER_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True)
class Resolution:
    """The entry point chosen for a scheme, and the distribution providing it."""

    scheme: str
    entry_point: EntryPoint
    distribution: str


def open_store(
    url: str, prefix: str = "", *, max_value_bytes: int | None = None, layout: str = "0.5"
) -> MemoStore:
    """Return a :class:`~taquba_memo.MemoStore` on the backend ``url`` names.

    ``prefix``, ``max_value_bytes`` and ``layout`` are the store's (see ``MemoStore``);
    the URL only chooses the backend and its root. Close the store when done
    (``async with open_store(...) as store``): that closes the backend.

    Raises :class:`~taquba_memo.InvalidURLError` for a malformed or unknown
    URL and :class:`~taquba_memo.AdapterNotInstalledError` (a subclass of it,
    and of ``ValueError``) when the package for its scheme is missing. The
    synchronous twin is :func:`taquba_memo.sync.open_store`.
    """
    # Refuse bad store arguments before an adapter opens connections.
    MemoStore(InMemoryBackend(), prefix, max_value_bytes=max_value_bytes, layout=layout)
    return MemoStore(open_backend(url), prefix, max_value_bytes=max_value_bytes, layout=layout)


def open_backend(url: str) -> MemoBackend:
    """Return the :class:`~taquba_memo.MemoBackend` that ``url`` names (see the module docs).

    No error raised here repeats a credential the URL carries (user info, or
    a query parameter that holds a secret), whoever wrote the message.
    """
    if not isinstance(url, str):
        raise InvalidValueTypeError(f"url must be str, not {type(url).__name__}")
    try:
        return _open_backend(url)
    except Exception as exc:
        scrub_exception(exc, url)
        raise


def _open_backend(url: str) -> MemoBackend:
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme:
        raise InvalidURLError(
            f"{redact_url(url)!r} has no scheme; use for example file:///path, memory:// or s3://bucket/base"
        )
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path or parts.query or parts.fragment:
            raise InvalidURLError(f"a memory URL takes no name, path or query: {redact_url(url)!r}")
        return InMemoryBackend()
    if scheme == "file":
        try:
            return LocalFileBackend(_file_path(url, parts))
        except InvalidArgumentError as exc:
            # A NUL, or a character the file system cannot encode, names no directory.
            raise InvalidURLError(f"{redact_url(url)!r} names no directory: {exc}") from exc
    resolution = resolve_scheme(scheme)
    try:
        opener: Callable[[str], object] = resolution.entry_point.load()
    except ImportError as exc:
        raise AdapterNotInstalledError(
            f"{resolution.distribution} provides {scheme}:// URLs but failed to import "
            f"({exc}); reinstall it: pip install --force-reinstall {resolution.distribution}",
            (resolution.distribution,),
        ) from exc
    try:
        backend = opener(url)
    except InvalidURLError:
        raise
    except ValueError as exc:
        # Adapters refuse a bad bucket, path or parameter with a ValueError.
        raise InvalidURLError(
            f"{resolution.distribution} refused {redact_url(url)!r}: {exc}"
        ) from exc
    if not isinstance(backend, MemoBackend):
        raise InvalidValueTypeError(
            f"entry point {resolution.entry_point.name!r} of {resolution.distribution} "
            f"returned {type(backend).__name__}, not a MemoBackend"
        )
    return backend


def resolve_scheme(scheme: str) -> Resolution:
    """Choose the entry point for ``scheme`` by the rules in the module docs."""
    scheme = scheme.lower()
    candidates = _entry_points_named(scheme)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise _not_installed(scheme)
    if "+" not in scheme:
        preferred = [c for c in candidates if c.distribution == PREFERRED_DISTRIBUTION]
        if len(preferred) == 1:
            return preferred[0]
    choices = sorted({r.scheme for r in _all_entry_points() if r.scheme.startswith(scheme + "+")})
    providers = ", ".join(sorted(c.distribution for c in candidates))
    hint = f"; choose one with {', '.join(f'{choice}://' for choice in choices)}" if choices else ""
    raise InvalidURLError(f"several installed packages provide {scheme}:// ({providers}){hint}")


def _all_entry_points() -> list[Resolution]:
    # Imported here: importlib.metadata costs milliseconds every import would pay.
    from importlib.metadata import entry_points

    found = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        name = _normalize_distribution(dist.name) if dist is not None else "an unknown package"
        found.append(Resolution(entry_point.name.lower(), entry_point, name))
    return found


def _entry_points_named(scheme: str) -> list[Resolution]:
    unique: dict[tuple[str, str], Resolution] = {}
    for resolution in _all_entry_points():
        if resolution.scheme == scheme:
            unique.setdefault((resolution.distribution, resolution.entry_point.value), resolution)
    return list(unique.values())


def _normalize_distribution(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _not_installed(scheme: str) -> MemoError:
    base, plus, adapter = scheme.partition("+")
    if plus:
        if not _ADAPTER_NAME.fullmatch(adapter):
            return InvalidURLError(f"unknown URL scheme {scheme!r}")
        package = f"taquba-memo-{adapter}"
        return AdapterNotInstalledError(
            f"{scheme}:// URLs need the {package} package: pip install {package}", (package,)
        )
    packages = _PACKAGES_FOR_SCHEME.get(base)
    if packages is None:
        known = sorted({*_BUILT_IN, *(r.scheme for r in _all_entry_points())})
        return InvalidURLError(f"unknown URL scheme {scheme!r}; known: {', '.join(known)}")
    options = " or ".join(f"pip install {package}" for package in packages)
    return AdapterNotInstalledError(
        f"no installed package provides {scheme}:// URLs; install one: {options}", packages
    )


def _file_path(url: str, parts: urllib.parse.SplitResult) -> str:
    if parts.netloc not in ("", "localhost"):
        raise InvalidURLError(
            f"a file URL names a local path: file:///absolute/path, not {redact_url(url)!r} "
            "(a host after file:// would be a network share)"
        )
    if parts.query or parts.fragment:
        raise InvalidURLError(f"a file URL takes no query or fragment: {redact_url(url)!r}")
    if not parts.path.startswith("/"):
        raise InvalidURLError(f"a file URL needs an absolute directory path: {redact_url(url)!r}")
    if os.name == "nt":
        # urllib.request brings http.client, email and more: only where it is needed.
        from urllib.request import url2pathname

        return url2pathname(parts.path)
    return urllib.parse.unquote(parts.path)  # what url2pathname does on POSIX
