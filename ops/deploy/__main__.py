"""``python -m ops.deploy plan|deploy|outputs|destroy|bake-ami``: see cli.py."""

import sys

from ops.deploy.cli import main

sys.exit(main())
