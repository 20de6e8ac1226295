"""Hub ids while offline: say so at once instead of waiting for transformers' connection retries.

The hub counts as offline when ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` is set or one short connection to the
hub endpoint fails. Then a hub id that is in the local Hugging Face cache loads from its snapshot directory (no
network at all), and one that is not raises :class:`ModelOfflineError` naming the id and how to pass a local
model directory instead. :func:`check_model_available` is called by ``models.load_model`` and by the training and
evaluation input checks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .models import ModelAccessError, resolve_model


class ModelOfflineError(ModelAccessError):
    """A hub id was asked for while the hub is unreachable and the model is not in the local cache."""


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_NETWORK_PROBE: dict[str, tuple[float, str | None]] = {}  # host -> (time, problem), reused for a minute


def _network_problem(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection to ``host:port`` opens within ``timeout`` seconds; else why not."""
    import socket
    import threading

    result: list[str | None] = []

    def probe() -> None:  # in a thread: name resolution ignores socket timeouts
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(f"{host}:{port} cannot be reached ({e.strerror or e})")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return result[0] if result else f"{host}:{port} did not answer within {timeout:g} s"


def hub_offline_reason(*, timeout: float = 2.0) -> str | None:
    """Why the Hugging Face hub cannot be used now, or None: an offline variable is set, or no network.

    The network check opens one connection to the hub endpoint with a short timeout (its answer is reused for a
    minute), instead of transformers' retries that take about a minute before failing. It is skipped behind an
    HTTP(S) proxy, where only the hub client can tell.
    """
    from urllib.parse import urlsplit

    import huggingface_hub.constants as hub_constants

    for var in _OFFLINE_VARS:
        if os.environ.get(var, "").upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{var}={os.environ[var]} is set"
    if hub_constants.HF_HUB_OFFLINE:
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE)"
    if any(
        os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
    ):
        return None  # behind a proxy a direct connection says nothing: let the hub client try
    url = urlsplit(hub_constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    seen = _NETWORK_PROBE.get(host)
    if seen is None or time.monotonic() - seen[0] > 60:
        seen = _NETWORK_PROBE[host] = (time.monotonic(), _network_problem(host, port, timeout))
    return seen[1]


def _cached_snapshot(hub_id: str, cache_dir: str | Path | None) -> str | None:
    """The local snapshot directory of a hub id in the HF cache (with its config.json), or None."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(hub_id, "config.json", cache_dir=cache_dir)
    return str(Path(config).parent) if isinstance(config, str) else None


def check_model_available(name: str, cache_dir: str | Path | None = None) -> str | None:
    """For a hub id while the hub is offline: the cached snapshot directory to load from, or ModelOfflineError
    when it is not cached. None when the hub may be used or the name needs no hub.

    Loading from the snapshot directory, not the id, keeps transformers off the network entirely (with an id it
    still asks the hub for an adapter_config.json, and retries for about 20 s).
    """
    spec = resolve_model(name)
    if spec.kind != "hub":
        return None
    reason = hub_offline_reason()
    if reason is None:
        return None
    snapshot = _cached_snapshot(spec.source, cache_dir)
    if snapshot is not None:
        return snapshot
    from huggingface_hub.constants import HF_HUB_CACHE

    raise ModelOfflineError(
        f"cannot load {name!r}: the Hugging Face hub is offline ({reason}) and {spec.source!r} is not in the "
        f"local cache ({cache_dir or HF_HUB_CACHE}). Pass a local model directory instead: download it where "
        f"there is network (`hf download {spec.source} --local-dir DIR`), copy DIR here and give its path as the "
        "model name (e.g. base_model='DIR'); or go online and unset HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE."
    )


__all__ = ["ModelOfflineError", "check_model_available", "hub_offline_reason"]
