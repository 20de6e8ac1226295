"""socialite_utils: the library behind the socialite notebooks.

Notebooks orchestrate; this package computes. Pipeline stages map to modules:
registry (task definitions as data) -> data (loaders) -> prompts -> assembly ->
models -> training -> scoring -> metrics -> reporting / analysis / baselines -> pipeline.
"""

__version__ = "0.1.0"
