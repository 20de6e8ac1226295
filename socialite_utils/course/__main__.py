"""``python -m socialite_utils.course student|site``: see :mod:`socialite_utils.course.build`."""

from .build import main

raise SystemExit(main())
