"""``python -m ops.devstack run``: the whole local stack in the foreground (what ``make run`` calls)."""

import sys

from ops.devstack.stack import main

sys.exit(main())
