"""``python -m socialite_utils.training``: notebook 02 on the command line (see :mod:`socialite_utils.training.cli`)."""

from .cli import main

raise SystemExit(main())
