"""Backends embedded in the core: in-memory, local files, and a forwarding wrapper."""

from taquba_memo._backends.forwarding import ForwardingBackend
from taquba_memo._backends.local import LocalFileBackend
from taquba_memo._backends.memory import InMemoryBackend

__all__ = ["ForwardingBackend", "InMemoryBackend", "LocalFileBackend"]
