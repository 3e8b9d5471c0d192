"""taquba-memo-agents: each LLM call paid once, inside the frameworks agents are written in.

One module per framework, each behind an optional extra, each built on the
core's agent primitives: the step's memo bound with :func:`taquba_memo.use_memo`
and found with :func:`taquba_memo.current_memo`, request keys
(:func:`taquba_memo.request_key`), occurrence keys for identical requests
(``Memo.occurrence_key``), streams recorded and replayed (``Memo.get_or_stream``)
and claims. Outside any ``use_memo`` block every integration passes calls
through untouched.
"""

__all__: list[str] = []
