"""``python -m graphfuse.explain``: see :mod:`graphfuse.explain.cli`."""
import sys

from graphfuse.explain.cli import main

sys.exit(main())
