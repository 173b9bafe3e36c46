"""``python -m unijax``: the ``unijax`` command (``python -m unijax --version``)."""

import sys

from unijax.cli import main

sys.exit(main())
