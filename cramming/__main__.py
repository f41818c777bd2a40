import sys

from cramming.cli import main

sys.exit(main())
