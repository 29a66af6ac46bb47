"""``python -m hce_engine.cli``: the ``hce`` command."""
import sys

from . import main

sys.exit(main())
