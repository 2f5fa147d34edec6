"""``python -m interop`` runs ``mptcp-lab``."""

import sys

from interop.cli import main

sys.exit(main())
