"""``python -m payrecon``: the same entry point as the ``payrecon`` command."""

import sys

from payrecon.cli import main

sys.exit(main())
