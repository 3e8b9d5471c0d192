"""Backends embedded in the core: in-memory, local files, and a forwarding wrapper."""

from taquba_memo.backends.forwarding import ForwardingBackend
from taquba_memo.backends.local import LocalFileBackend
from taquba_memo.backends.memory import InMemoryBackend

__all__ = ["ForwardingBackend", "InMemoryBackend", "LocalFileBackend"]
