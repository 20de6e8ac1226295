"""The layers a LoRA adapter targets, checked against the loaded base model before a run writes anything.

PEFT finds an unknown target module only when it wraps the model, after ``train_lora`` has created
``runs/<run_name>.partial/``; the corrected rerun would then be told to resume a run that never trained.
:func:`check_target_modules` matches the targets as PEFT does (a name equal to the module's name or to the end of
its dotted path; a string other than ``all-linear`` is a regular expression over the whole path) and names the
model's linear layers when one matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch


def _matches(target: str, name: str) -> bool:
    return name == target or name.endswith(f".{target}")


def linear_layer_names(model: Any) -> list[str]:
    """The distinct last names of ``model``'s linear layers (``q_proj``, ``v_proj``, ...), sorted."""
    return sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n}
    )


def check_target_modules(
    model: Any, target_modules: str | Iterable[str] | None, *, param: str = "lora_target_modules"
) -> None:
    """Raise ValueError naming ``param``, the targets that match no module of ``model`` and the model's linear
    layers; return None when every target matches (``all-linear`` and None are PEFT's to resolve)."""
    if target_modules is None or target_modules == "all-linear":
        return
    names = [n for n, _ in model.named_modules() if n]
    if isinstance(target_modules, str):
        try:
            pattern = re.compile(target_modules)
        except re.error as e:
            raise ValueError(f"{param} {target_modules!r} is not a valid regular expression ({e})") from None
        missing = [] if any(pattern.fullmatch(n) for n in names) else [target_modules]
    else:
        targets = sorted(str(t) for t in target_modules)
        missing = [t for t in targets if not any(_matches(t, n) for n in names)]
    if missing:
        layers = ", ".join(linear_layer_names(model)) or "none"
        raise ValueError(
            f"{param}: {missing} match no module of the base model ({type(model).__name__}); its linear layers: "
            f"{layers} (or 'all-linear'). Nothing was written: fix {param} and run again"
        )
