"""`python -m confsec.cli`: the same entry point as the `confsec` script."""

import sys

from confsec.cli import main

sys.exit(main())
