"""Data: the tasks' rows, from the project's bundles or the Hub, assembled into a data run (notebook 01).

Modules: ``loaders`` (a task's split from a bundle), ``sources`` (the Hub's Socialite and SOCKET data), ``sample``
(the small sample packaged for Colab), ``assembly`` (``build_data``: rows, few-shot pool, data card; written as
a data run), ``types`` (its options and result), ``mixing`` (generalist instruction rows mixed in),
``writing_sources`` and ``writing_rows`` (the writing tasks' references and generation rows)."""

from .assembly import (
    build_data,
    load_data_card,
    load_data_run,
    mixture_table,
    show_examples,
    task_table,
    write_data_run,
)
from .loaders import (
    DATA_DIR_ENV,
    SOURCES,
    SPLITS,
    DataError,
    DataWarning,
    default_data_dir,
    load_local_split,
    load_manifest,
    load_task_split,
    project_data_dir,
    read_manifest,
    resolve_data_dir,
    split_location,
)
from .mixing import (
    MixtureSpec,
)
from .types import (
    AssembledData,
    DataParams,
)
from .writing_sources import (
    default_general_dir,
    default_writing_dir,
    load_general_instructions,
    load_generation_split,
    load_writing_split,
)

__all__ = [
    "AssembledData",
    "build_data",
    "DATA_DIR_ENV",
    "DataError",
    "DataParams",
    "DataWarning",
    "default_data_dir",
    "project_data_dir",
    "default_general_dir",
    "default_writing_dir",
    "load_data_card",
    "load_data_run",
    "load_general_instructions",
    "load_generation_split",
    "load_local_split",
    "load_manifest",
    "load_task_split",
    "load_writing_split",
    "mixture_table",
    "MixtureSpec",
    "read_manifest",
    "resolve_data_dir",
    "show_examples",
    "SOURCES",
    "split_location",
    "SPLITS",
    "task_table",
    "write_data_run",
]
