"""Backends embedded in the core: in-memory and local files."""

from taquba_memo.backends.local import LocalFileBackend
from taquba_memo.backends.memory import InMemoryBackend

__all__ = ["InMemoryBackend", "LocalFileBackend"]
