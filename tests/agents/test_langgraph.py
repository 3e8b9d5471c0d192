"""LangGraph: MemoNodeCache with stable_cache_key pays each node once per step (real HTTP).

The graphs are real LangGraph graphs whose nodes call langchain-openai's
ChatOpenAI against the counting fake OpenAI server: ``first`` answers the
user, ``follow_up`` adds a question (``add_messages`` gives it a random id),
``second`` answers again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import CachePolicy
from pydantic import BaseModel, ConfigDict
from taquba_memo import ClaimPolicy, InvalidValueTypeError, LocalFileBackend, MemoStore, use_memo
from taquba_memo import sync as memo_sync
from taquba_memo.errors import EncodeError
from taquba_memo_agents.langchain import MemoChatModel
from taquba_memo_agents.langgraph import MemoNodeCache, stable_cache_key
from typing_extensions import TypedDict

from tests.agents._attempts import attempts_async, attempts_sync, backend, duplicate_workers_sync
from tests.agents._kill import attempts_with_a_kill
from tests.agents.fake_openai import FakeOpenAI, answer_to
from tests.agents.test_langchain import chat_openai, chat_openai_at

__all__ = ["backend"]

QUESTION: Any = {"messages": [("user", "weather?")]}
FINAL = answer_to("and in one word?")
STABLE = CachePolicy(key_func=stable_cache_key)
DEFAULT_KEY: CachePolicy[Any] = CachePolicy()  # the pickled input, message ids and all


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def graph(
    model: BaseChatModel,
    *,
    policy: CachePolicy[Any] | None = STABLE,
    cache: MemoNodeCache | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """first -> follow_up -> second, the model nodes cached with ``policy`` (sync nodes)."""

    def answer(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    return _wired(answer, policy, cache)


def async_graph(
    model: BaseChatModel,
    *,
    policy: CachePolicy[Any] | None = STABLE,
    cache: MemoNodeCache | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The same graph with async nodes."""

    async def answer(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    return _wired(answer, policy, cache)


def _wired(
    answer: Any, policy: CachePolicy[Any] | None, cache: MemoNodeCache | None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    builder.add_node("first", answer, cache_policy=policy)
    builder.add_node("follow_up", lambda state: {"messages": [HumanMessage("and in one word?")]})
    builder.add_node("second", answer, cache_policy=policy)
    builder.add_edge(START, "first")
    builder.add_edge("first", "follow_up")
    builder.add_edge("follow_up", "second")
    builder.add_edge("second", END)
    return builder.compile(cache=cache or MemoNodeCache())


def last(state: dict[str, Any]) -> str:
    return str(state["messages"][-1].content)


def streamed(compiled: CompiledStateGraph[Any, Any, Any, Any]) -> str:
    """The graph streamed with the model's tokens (``stream_mode="messages"``) and its values."""
    state: Any = {}
    for mode, part in compiled.stream(QUESTION, stream_mode=["messages", "values"]):
        if mode == "values":
            state = part
    return last(state)


async def astreamed(compiled: CompiledStateGraph[Any, Any, Any, Any]) -> str:
    state: Any = {}
    async for mode, part in compiled.astream(QUESTION, stream_mode=["messages", "values"]):
        if mode == "values":
            state = part
    return last(state)


def test_three_attempts_pay_what_one_clean_run_pays(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    compiled = graph(chat_openai(fake_openai))
    clean, attempts = attempts_sync(
        sync_store, fake_openai, lambda: last(compiled.invoke(QUESTION))
    )
    assert (clean, attempts) == (2, 2)


def test_three_streamed_attempts_pay_what_one_clean_run_pays(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    compiled = graph(chat_openai(fake_openai))
    clean, attempts = attempts_sync(sync_store, fake_openai, lambda: streamed(compiled))
    assert (clean, attempts) == (2, 2)
    assert all(body.get("stream") for body in fake_openai.bodies)  # the model did stream


async def test_three_async_attempts_pay_what_one_clean_run_pays(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    compiled = async_graph(chat_openai(fake_openai))

    async def step() -> str:
        return last(await compiled.ainvoke(QUESTION))

    clean, attempts = await attempts_async(sync_store, fake_openai, step)
    assert (clean, attempts) == (2, 2)


async def test_three_async_streamed_attempts_on_an_async_store_pay_one_clean_run(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    compiled = async_graph(chat_openai(fake_openai))
    store = MemoStore(LocalFileBackend(tmp_path / "memo"), "agents")
    clean, attempts = await attempts_async(store, fake_openai, lambda: astreamed(compiled))
    await store.aclose()
    assert (clean, attempts) == (2, 2)
    if sys.version_info >= (3, 11):
        # Before 3.11 asyncio tasks take no context, so LangGraph's async graph cannot hand
        # the messages stream to the model, which then answers without streaming.
        assert all(body.get("stream") for body in fake_openai.bodies)


def test_a_tool_loop_runs_each_tool_and_pays_each_model_call_once(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    looked_up: list[str] = []

    @tool
    def lookup(query: str) -> str:
        """Look the query up (a tool that costs something too)."""
        looked_up.append(query)
        return f"found {query}"

    model = chat_openai(fake_openai).bind_tools([lookup])
    builder = StateGraph(State)
    builder.add_node(
        "agent", lambda state: {"messages": [model.invoke(state["messages"])]}, cache_policy=STABLE
    )
    builder.add_node("tools", ToolNode([lookup]), cache_policy=STABLE)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    compiled = builder.compile(cache=MemoNodeCache())

    clean, attempts = attempts_sync(
        sync_store, fake_openai, lambda: last(compiled.invoke(QUESTION))
    )
    assert (clean, attempts) == (2, 2)  # the tool call, then the answer with its result
    assert looked_up == ["weather?", "weather?"]  # once for the clean run, once for the three


def killable_step(base_url: str) -> str:
    """The graph streamed; the first attempt runs in a child process."""
    return streamed(graph(chat_openai_at(base_url)))


def test_a_worker_sigkilled_after_its_last_response_its_retry_and_a_duplicate_pay_one_run(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    assert attempts_with_a_kill(fake_openai, tmp_path / "bucket", killable_step) == (2, 2)


def message_parts_of_two_attempts(
    compiled: CompiledStateGraph[Any, Any, Any, Any], store: memo_sync.MemoStore
) -> list[list[str]]:
    """What ``stream_mode="messages"`` shows in each of two attempts of (run-1, 1)."""
    attempts = []
    for _ in range(2):
        with memo_sync.use_memo(store.new_memo("run-1", 1)):
            parts: Any = compiled.stream(QUESTION, stream_mode="messages")
            attempts.append([str(chunk.content) for chunk, _ in parts])
    return attempts


def test_uncached_nodes_with_memo_chat_model_replay_their_tokens_without_paying(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    compiled = graph(MemoChatModel(inner=chat_openai(fake_openai)), policy=None)
    streamed_parts = message_parts_of_two_attempts(compiled, sync_store)
    assert streamed_parts[1] == streamed_parts[0]
    assert "".join(streamed_parts[0]).endswith(FINAL)
    assert fake_openai.total_paid == 2


def test_a_cached_node_shows_no_tokens_on_a_retry(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    compiled = graph(MemoChatModel(inner=chat_openai(fake_openai)))
    streamed_parts = message_parts_of_two_attempts(compiled, sync_store)
    assert streamed_parts[1] == ["and in one word?"]  # follow_up's message only: it ran
    assert fake_openai.total_paid == 2


def test_two_nodes_of_one_step_run_in_threads_and_are_stored_too(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    model = chat_openai(fake_openai)

    def ask(question: str) -> Any:  # a node
        return lambda state: {"messages": [model.invoke([HumanMessage(question)])]}

    builder = StateGraph(State)
    builder.add_node("weather", ask("weather?"), cache_policy=STABLE)
    builder.add_node("news", ask("news?"), cache_policy=STABLE)
    builder.add_edge(START, "weather")
    builder.add_edge(START, "news")  # one step, two tasks: LangGraph runs them in its threads
    compiled = builder.compile(cache=MemoNodeCache())

    def step() -> list[str]:
        return sorted(str(message.content) for message in compiled.invoke(QUESTION)["messages"])

    clean, attempts = attempts_sync(sync_store, fake_openai, step)
    assert (clean, attempts) == (2, 2)


def test_langgraphs_default_key_pays_again_on_every_attempt(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    compiled = graph(chat_openai(fake_openai), policy=DEFAULT_KEY)
    clean, attempts = attempts_sync(
        sync_store, fake_openai, lambda: last(compiled.invoke(QUESTION))
    )
    assert (clean, attempts) == (2, 6)  # random message ids: the pickled input never recurs


def test_outside_use_memo_every_node_runs(fake_openai: FakeOpenAI) -> None:
    compiled = graph(chat_openai(fake_openai))
    for _ in range(2):
        assert last(compiled.invoke(QUESTION)) == FINAL
    assert fake_openai.total_paid == 4


def test_an_error_response_is_never_stored(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    compiled = graph(chat_openai(fake_openai))
    fake_openai.fail_next(1, status=500)
    with memo_sync.use_memo(sync_store.new_memo("run-1", 1)), pytest.raises(Exception, match="500"):
        compiled.invoke(QUESTION)
    for _ in range(2):
        with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
            assert last(compiled.invoke(QUESTION)) == FINAL
    assert fake_openai.received["/v1/chat/completions"] == 3  # the failure, then two paid answers
    assert fake_openai.total_paid == 2


def test_an_explicit_memo_serves_a_graph_compiled_per_attempt(
    sync_store: memo_sync.MemoStore, fake_openai: FakeOpenAI
) -> None:
    model = chat_openai(fake_openai)
    for _ in range(3):
        compiled = graph(model, cache=MemoNodeCache(sync_store.new_memo("run-1", 1)))
        assert last(compiled.invoke(QUESTION)) == FINAL  # no use_memo block
    assert fake_openai.total_paid == 2


async def test_an_explicit_async_memo_serves_an_async_graph(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    model = chat_openai(fake_openai)
    store = MemoStore(LocalFileBackend(tmp_path / "memo"), "agents")
    for _ in range(3):
        compiled = async_graph(model, cache=MemoNodeCache(store.new_memo("run-1", 1)))
        assert last(await compiled.ainvoke(QUESTION)) == FINAL
    await store.aclose()
    assert fake_openai.total_paid == 2


def test_an_input_the_key_cannot_encode_fails_the_node() -> None:
    with pytest.raises(EncodeError, match="no canonical encoding"):
        stable_cache_key({"messages": [], "client": object()})


async def test_a_sync_graph_refuses_an_async_memo_rather_than_paying_again(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    store = MemoStore(LocalFileBackend(tmp_path / "memo"), "agents")
    compiled = graph(chat_openai(fake_openai), cache=MemoNodeCache(store.new_memo("run-1", 1)))
    with pytest.raises(InvalidValueTypeError, match="sync"):
        compiled.invoke(QUESTION)
    await store.aclose()
    with pytest.raises(InvalidValueTypeError):
        MemoNodeCache("run-1")  # type: ignore[arg-type]


# -- the cache's halves, called as LangGraph calls them --------------------------------

KEY = (("__pregel_ns_writes", "module.answer", "first"), "0123abcd")
WRITES = [("messages", [AIMessage("stored answer", id="lc_run--1-0")])]


def in_a_bare_thread(call: Callable[[], None]) -> None:
    """``call`` in a thread that starts with an empty context: no memo bound."""
    thread = threading.Thread(target=call)
    thread.start()
    thread.join()


def test_set_without_a_bound_memo_stores_in_the_memo_that_missed_the_key(
    sync_store: memo_sync.MemoStore,
) -> None:
    cache = MemoNodeCache()
    with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
        assert cache.get([KEY]) == {}
    in_a_bare_thread(lambda: cache.set({KEY: (WRITES, None)}))  # as graph.stream does
    with memo_sync.use_memo(sync_store.new_memo("run-1", 1)):
        found = cache.get([KEY])
    assert [(channel, value[0].content) for channel, value in found[KEY]] == [
        ("messages", "stored answer")
    ]


def test_two_steps_missing_one_key_at_once_store_in_neither(
    sync_store: memo_sync.MemoStore, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MemoNodeCache()
    for run_id in ("run-1", "run-2"):
        with memo_sync.use_memo(sync_store.new_memo(run_id, 1)):
            assert cache.get([KEY]) == {}
    in_a_bare_thread(lambda: cache.set({KEY: (WRITES, None)}))
    assert "2 steps missed the same cache key" in caplog.text
    for run_id in ("run-1", "run-2"):
        with memo_sync.use_memo(sync_store.new_memo(run_id, 1)):
            assert cache.get([KEY]) == {}  # a retry pays again rather than take another's answer


def test_duplicate_workers_with_a_claim_pay_once(tmp_path: Path) -> None:
    with FakeOpenAI(answer_delay_s=0.5) as server:
        model = MemoChatModel(
            inner=chat_openai(server), claim=ClaimPolicy(lease_s=5, poll_max_s=0.05)
        )
        compiled = graph(model)
        results = duplicate_workers_sync(
            tmp_path / "shared", lambda: last(compiled.invoke(QUESTION))
        )
        assert results == [FINAL, FINAL]
        assert server.total_paid == 2


async def test_async_duplicate_workers_with_a_claim_pay_once(tmp_path: Path) -> None:
    with FakeOpenAI(answer_delay_s=0.5) as server:
        model = MemoChatModel(
            inner=chat_openai(server), claim=ClaimPolicy(lease_s=5, poll_max_s=0.05)
        )
        compiled = async_graph(model)
        # Two stores on one directory: two workers that share nothing but the bucket.
        stores = [MemoStore(LocalFileBackend(tmp_path / "memo"), "agents") for _ in range(2)]

        async def worker(store: MemoStore) -> str:
            with use_memo(store.new_memo("run-1", 1)):
                return last(await compiled.ainvoke(QUESTION))

        assert await asyncio.gather(*map(worker, stores)) == [FINAL, FINAL]
        assert server.total_paid == 2
        for opened in stores:
            await opened.aclose()


# -- the key -----------------------------------------------------------------------


class PydanticState(BaseModel):
    messages: list[AnyMessage]
    topic: str


@dataclasses.dataclass
class DataclassState:
    messages: list[AnyMessage]
    topic: str


def attempt_of(content: str) -> list[AnyMessage]:
    """A history as one attempt has it: random ids, this attempt's receipts."""
    return [
        HumanMessage(content, id=str(uuid.uuid4())),
        AIMessage(
            answer_to(content),
            id=f"lc_run--{uuid.uuid4()}-0",
            response_metadata={"id": f"chatcmpl-{uuid.uuid4()}"},
            usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        ),
    ]


@pytest.mark.parametrize(
    "state",
    [
        lambda messages: {"messages": messages, "topic": "t"},
        lambda messages: PydanticState(messages=messages, topic="t"),
        lambda messages: DataclassState(messages=messages, topic="t"),
        lambda messages: (messages, {"nested": [messages[-1]]}),
    ],
    ids=["dict", "pydantic", "dataclass", "nested"],
)
def test_the_key_ignores_ids_and_receipts_but_not_content(state: Callable[[Any], Any]) -> None:
    assert stable_cache_key(state(attempt_of("q"))) == stable_cache_key(state(attempt_of("q")))
    assert stable_cache_key(state(attempt_of("q"))) != stable_cache_key(state(attempt_of("p")))


def test_a_state_with_extra_fields_is_keyed_by_them_too() -> None:
    class State(BaseModel):
        model_config = ConfigDict(extra="allow")
        question: str

    first = State(question="q", city="Lisbon")  # type: ignore[call-arg]
    second = State(question="q", city="Porto")  # type: ignore[call-arg]
    assert stable_cache_key(first) != stable_cache_key(second)
    again = State(question="q", city="Lisbon")  # type: ignore[call-arg]
    assert stable_cache_key(first) == stable_cache_key(again)
