"""One duplicate worker of a step, in a process of its own: for the claim tests.

    python -m tests.runtimes.duplicate_worker SPEC RUN_ID LLM_URL LEASE_S GO_FILE PROMPT...

It opens a sync store on the backend ``SPEC`` describes (once per process,
as docs/runtimes.md shows), prints ``ready``, waits until ``GO_FILE`` exists (so
that every worker starts together), then makes one billed LLM call per
prompt through ``get_or_compute`` with a claim, and prints its answers as
one JSON line. An alarm ends a worker that hangs.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time

from taquba_memo import ClaimPolicy, JSONCodec
from taquba_memo.sync import MemoStore

from tests.runtimes.backend_specs import build_backend, decode_spec
from tests.runtimes.llm_server import complete

WORKER_ALARM_S = 60


def main() -> None:
    signal.alarm(WORKER_ALARM_S)
    spec_text, run_id, llm_url, lease_s, go_file, *prompts = sys.argv[1:]
    claim = ClaimPolicy(lease_s=float(lease_s))
    with MemoStore(build_backend(decode_spec(spec_text)), "agents") as store:
        print("ready", flush=True)
        while not os.path.exists(go_file):
            time.sleep(0.005)
        memo = store.new_memo(run_id, 1)
        answers = [
            memo.get_or_compute(
                f"call-{i}",
                functools.partial(complete, llm_url, prompt),
                codec=JSONCodec(),
                claim=claim,
            )
            for i, prompt in enumerate(prompts)
        ]
    print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main()
