"""socialite_utils: the library behind the socialite notebooks.

Notebooks orchestrate; this package computes. A folder per stage, over a kernel of small shared modules;
imports run only downward (tests/test_layers.py checks it):

    course/      exercises and the course site               (notebooks 00-07)
    studies/     generalist mixing, writing assistance       (notebooks 06, 07)
    baselines/   label-prior floors, TF-IDF, encoder         (notebook 05)
    analysis/    error analysis of an evaluation run         (notebook 04)
    evaluation/  plan -> scoring -> predictions -> run       (notebook 03)
    training/    rows -> LoRA recipe -> trainer              (notebook 02)
    data/        loaders -> assembly (+ mixing, writing)     (notebook 01)
    kernel:      runs, schema, registry, prompts, tokens, models, metrics, text_metrics, claims,
                 reporting, plotting

``pipeline`` runs the notebooks headless, one step each.
"""

__version__ = "0.1.0"
