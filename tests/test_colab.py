"""The Colab setup helper: bitsandbytes installed only on a GPU runtime that lacks it, a login hint only without a
token, nothing at all off Colab. The machine is stood in for (no pip, no GPU, no Hub here)."""

from __future__ import annotations

import sys
import types

import pytest

from socialite_utils import colab


@pytest.fixture
def on_colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


def _machine():
    calls, said = [], []
    return calls, said, {"run": lambda cmd, check: calls.append(cmd), "say": said.append}


def test_off_colab_nothing_happens(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls, said, kw = _machine()
    assert colab.prepare_colab_gpu(cuda=True, token=lambda: None, **kw) == []
    assert calls == [] and said == []


def test_gpu_runtime_gets_bitsandbytes_and_a_login_hint(on_colab, monkeypatch):
    monkeypatch.setattr(colab.importlib.util, "find_spec", lambda name: None)  # not installed
    calls, said, kw = _machine()
    assert colab.prepare_colab_gpu(cuda=True, token=lambda: None, **kw) == ["bitsandbytes"]
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "bitsandbytes"]]
    assert said == [colab.LOGIN_HINT] and "HF_TOKEN" in said[0] and "notebook_login" in said[0]


def test_cpu_runtime_with_a_token_installs_nothing_and_says_nothing(on_colab, monkeypatch):
    monkeypatch.setattr(colab.importlib.util, "find_spec", lambda name: None)
    calls, said, kw = _machine()
    assert colab.prepare_colab_gpu(cuda=False, token=lambda: "hf_x", **kw) == []
    assert calls == [] and said == []


def test_gpu_runtime_that_has_bitsandbytes_is_left_alone(on_colab, monkeypatch):
    monkeypatch.setattr(colab.importlib.util, "find_spec", lambda name: object())  # installed
    calls, said, kw = _machine()
    assert colab.prepare_colab_gpu(cuda=True, token=lambda: "hf_x", **kw) == []
    assert calls == []
