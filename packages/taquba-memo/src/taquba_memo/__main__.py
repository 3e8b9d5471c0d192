"""``python -m taquba_memo``: the same command line as ``taquba-memo``."""

from taquba_memo.cli import entry_point

entry_point()
