"""Loading the writing-assistance bundles: rewriting tasks and generalist instruction data.

* ``writing_tasks``: ``<dir>/<task>/{train,validation,test}.jsonl`` rows ``{source, target, references}``
  (Writing-Alpaca's tasks; see the bundle's README and MANIFEST.json). Default location: ``$SOCIALITE_WRITING_DIR``,
  else next to the social bundle (``<social bundle>/../writing_tasks``, i.e. ``../shared/data/writing_tasks``).
* ``general_instructions``: ``<dir>/train.jsonl`` rows ``{instruction, input, output, source}`` (Alpaca-style
  generalist data). Default: ``$SOCIALITE_GENERAL_DIR``, else ``<social bundle>/../general_instructions``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .data import default_data_dir

WRITING_DIR_ENV = "SOCIALITE_WRITING_DIR"
GENERAL_DIR_ENV = "SOCIALITE_GENERAL_DIR"


def _sibling_dir(env: str, name: str) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else default_data_dir().parent / name


def default_writing_dir() -> Path:
    """``$SOCIALITE_WRITING_DIR``, else ``writing_tasks`` next to the social bundle (``default_data_dir()``)."""
    return _sibling_dir(WRITING_DIR_ENV, "writing_tasks")


def default_general_dir() -> Path:
    """``$SOCIALITE_GENERAL_DIR``, else ``general_instructions`` next to the social bundle."""
    return _sibling_dir(GENERAL_DIR_ENV, "general_instructions")
