"""``python -m ops.devstack run``: the whole local stack in the foreground (what ``make run`` calls)."""

import os
import sys

from ops.devstack.stack import main

code = main()
# Every child is stopped and every line written: skip the interpreter's
# teardown (a second or more with Django and botocore loaded), so the
# prompt comes back as soon as the stack is gone.
try:
    sys.stdout.flush()
    sys.stderr.flush()
except (OSError, ValueError):
    pass
os._exit(code)
