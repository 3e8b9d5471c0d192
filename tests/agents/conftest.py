"""The agent tests' fixtures: a counting fake OpenAI server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fresh FakeOpenAI server on 127.0.0.1, stopped after the test."""
    with FakeOpenAI() as server:
        yield server
