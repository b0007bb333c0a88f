"""``python -m vaecf``: the same as the ``vaecf`` command."""

import sys

from vaecf.cli import main

sys.exit(main())
