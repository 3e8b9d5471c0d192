"""Every shipped backend, described so that a fresh process can build it: for the fork tests.

A spec is a plain dict (pickled into the worker's argv or environment): the
backend's name, and for the adapters on emulators the kit's server objects
and, when processes must share one, the bucket (a fresh one otherwise).
The adapters are built by :func:`tests.builders.builder_for`, so each adapter
is configured for its emulator in one place only.
"""

from __future__ import annotations

import base64
import copy
import pickle
from typing import Any

from taquba_memo import InMemoryBackend, LocalFileBackend, MemoBackend

from tests.builders import SERVER_ADAPTERS

__all__ = [
    "EMBEDDED",
    "OBSTORE",
    "SERVER_BACKED",
    "build_backend",
    "decode_spec",
    "encode_spec",
    "portable_server",
]

EMBEDDED = ["memory", "local", "obstore-memory"]
SERVER_BACKED = list(SERVER_ADAPTERS)
OBSTORE = {name for name in EMBEDDED + SERVER_BACKED if name.startswith("obstore-")}


def portable_server(server: Any) -> Any:
    """A copy of a kit server object without what cannot cross a process (stop hook, clients)."""
    portable = copy.copy(server)
    portable._stop = None
    if hasattr(portable, "_client"):
        portable._client = None
    return portable


def encode_spec(spec: dict[str, Any]) -> str:
    return base64.b64encode(pickle.dumps(spec)).decode("ascii")


def decode_spec(text: str) -> dict[str, Any]:
    spec: dict[str, Any] = pickle.loads(base64.b64decode(text))
    return spec


def build_backend(spec: dict[str, Any]) -> MemoBackend:
    """A new backend from ``spec`` (each call builds a new client)."""
    name = spec["name"]
    if name == "memory":
        return InMemoryBackend()
    if name == "local":
        return LocalFileBackend(spec["root"])
    from obstore.store import MemoryStore
    from taquba_memo_obstore import ObstoreBackend

    if name == "obstore-memory":
        return ObstoreBackend(MemoryStore())
    from tests.builders import builder_for

    build, _ = builder_for(
        name.removesuffix("-rgw"),
        lambda: spec["s3"],
        lambda: spec["gcs"],
        lambda: spec["azure"],
        lambda: spec["xml_proxy"],
        spec.get("bucket"),
    )
    return build(None)
