"""``python -m ping``: the command line in ping.cli; serves when no command is given."""

import sys

from ping.cli import main

if __name__ == "__main__":
    sys.exit(main())
