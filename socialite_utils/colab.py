"""What a notebook's Colab setup cell needs beyond the kit: bitsandbytes on a GPU runtime, and a Hugging Face login
for gated models.

Every notebook's first code cell clones the repository and installs the kit when it runs on Colab; the notebooks
that load a model then call :func:`prepare_colab_gpu`. Elsewhere it does nothing.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from typing import Any

# 4-bit QLoRA (models.choose_precision picks it for 3B+ parameters on a small GPU) loads through bitsandbytes, which
# Colab's image does not ship.
GPU_PACKAGES = ("bitsandbytes",)
LOGIN_HINT = (
    "Gated models (meta-llama/..., used by the colab-t4 and paper profiles) need a Hugging Face token of an account "
    "that accepted the model's licence: add it as the Colab secret HF_TOKEN (the key icon on the left), or run\n"
    "    from huggingface_hub import notebook_login; notebook_login()"
)


def on_colab() -> bool:
    return "google.colab" in sys.modules


def prepare_colab_gpu(
    *,
    run: Callable[..., Any] = subprocess.run,
    cuda: bool | None = None,
    token: Callable[[], str | None] | None = None,
    say: Callable[[str], Any] = print,
) -> list[str]:
    """On Colab: install :data:`GPU_PACKAGES` when a GPU is attached and missing them, and say how to log in when
    no Hugging Face token is found. Returns the packages installed (``[]`` off Colab). The keyword arguments
    stand in for the machine in tests."""
    if not on_colab():
        return []
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    missing = [p for p in GPU_PACKAGES if importlib.util.find_spec(p) is None] if cuda else []
    if missing:
        run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
    if token is None:
        from huggingface_hub import get_token  # reads HF_TOKEN, a saved login and Colab's secrets

        token = get_token
    if not token():
        say(LOGIN_HINT)
    return missing


__all__ = ["GPU_PACKAGES", "LOGIN_HINT", "on_colab", "prepare_colab_gpu"]
