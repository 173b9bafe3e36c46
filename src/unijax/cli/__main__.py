"""``python -m unijax.cli``: the ``unijax`` command."""

import sys

from unijax.cli import main

sys.exit(main())
