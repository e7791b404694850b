"""python -m deepdig_fast ... is the `deepdig` command."""

import sys

from deepdig_fast.cli import main

sys.exit(main())
