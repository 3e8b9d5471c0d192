"""The pydantic models of the agent primitives suite, imported only where pydantic is installed."""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel

__all__ = ["Answer", "AnswerV2", "AssistantMessage", "Turn", "Usage"]


class Answer(BaseModel):
    model: str
    text: str


class AnswerV2(BaseModel):
    model: str
    text: str
    tokens: int  # a field the entries of Answer lack


class AssistantMessage(BaseModel):
    """Shaped like an SDK's chat message: optional fields that are None unless set."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None


@dataclasses.dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclasses.dataclass
class Turn:
    message: AssistantMessage
    usage: Usage
