"""``python -m taquba_memo``: the same command line as ``taquba-memo``."""

import sys

from taquba_memo.cli import main

sys.exit(main())
