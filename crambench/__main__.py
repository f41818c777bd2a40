"""`python -m crambench ...` is `cram ...`."""

import sys

from crambench.shell.cli import main

sys.exit(main())
