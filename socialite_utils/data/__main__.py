"""``python -m socialite_utils.data fetch``: obtain the bundles' fetched parts (see :mod:`socialite_utils.data.fetch`)."""

from .fetch import main

raise SystemExit(main())
