"""python -m deepdig_fast.cli ... is the `deepdig` command, as python -m deepdig_fast is."""

import sys

from deepdig_fast.cli import main

sys.exit(main())
