"""``python -m cinemo_core``: the same as the ``cinemo-animate`` command."""

import sys

from .app.cli import main

if __name__ == "__main__":
    sys.exit(main())
