"""Inference backends for a loaded sentence-transformers model: torch as loaded, or OpenVINO.

:func:`openvino_transformer` converts the model's transformer (the loaded torch module, so
nothing is downloaded) to OpenVINO with ``openvino.convert_model`` and compiles it for the
CPU in fp32. The converted model (OpenVINO IR) is cached on disk, keyed by the model folder's
files and the library versions, because converting takes seconds and reading it back a
fraction of that (bench/README.md). Only models whose output the embedder can reproduce are
converted: a transformer followed by mean pooling (and optionally normalisation); for any
other model, or if OpenVINO is missing or the conversion fails, it returns None and the
embedder keeps torch.

The cache folder is ``$CHATBOT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/chatbot`` (default
``~/.cache/chatbot``); each converted model is one sub-folder, written atomically.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("torch", "openvino")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what the wrapper accepts
IR_FORMAT = 1  # bump when the conversion below changes what is cached
IR_FILE = "model.xml"


def check_backend(backend: str) -> str:
    """``backend`` if it is one this project knows, else a ValueError saying which are."""
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)} "
            "(setting backend, env CHATBOT_BACKEND)"
        )
    return backend


def cpu_config() -> dict[str, str]:
    """OpenVINO's CPU settings: fp32, latency hint, and ``CHATBOT_THREADS`` threads if set
    (setting ``threads``; a Ray actor sets it to the CPUs it reserved)."""
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    threads = os.environ.get("CHATBOT_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        config["INFERENCE_NUM_THREADS"] = threads
        # Pinned threads of several such processes (Ray actors on one machine) would share
        # the first cores; unpinned, the OS spreads them (bench/README.md, "Scaling out").
        config["ENABLE_CPU_PINNING"] = "NO"
    return config


def cache_root() -> Path:
    """Where converted models are cached (see the module docstring)."""
    own = os.environ.get("CHATBOT_CACHE_DIR")
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "chatbot"


class OpenVINOTransformer:
    """A compiled OpenVINO model: token ids in, last hidden states out (float32 numpy).

    Not re-entrant: the caller serialises calls (the embedder holds a lock around them).
    """

    def __init__(self, compiled: Any, inputs: tuple[str, ...], source: str) -> None:
        self.compiled = compiled
        self.inputs = inputs
        self.source = source  # "converted" or "cache": where the model came from
        self._request = compiled.create_infer_request()

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        self._request.infer({n: batch[n] for n in self.inputs})
        return self._request.get_output_tensor(0).data.copy()


def convertible(model: Any) -> str | None:
    """Why the sentence-transformers ``model`` cannot run on OpenVINO here, or None if it can:
    a transformer with a fast tokenizer, then mean pooling, then optionally normalisation."""
    modules = [type(m).__name__ for m in model]
    if modules not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"modules {modules} (only Transformer, mean Pooling, Normalize are converted)"
    pooling = model[1].get_config_dict()
    if pooling.get("pooling_mode") != "mean" or not pooling.get("include_prompt", True):
        return f"pooling {pooling} (only mean pooling is converted)"
    if getattr(model, "default_prompt_name", None):
        return "the model adds a prompt to every text"
    if not getattr(model.tokenizer, "is_fast", False):
        return "its tokenizer has no character offsets (not a fast tokenizer)"
    names = set(model.tokenizer.model_input_names)
    if not {"input_ids", "attention_mask"} <= names <= set(INPUTS):
        return f"tokenizer inputs {sorted(names)}"
    if getattr(model[0], "auto_model", None) is None:
        return "no transformer module to convert"
    return None


def cache_key(model_path: str) -> str:
    """A digest of the model folder's files (path, size, modification time) and the
    versions of everything that shapes the converted model."""
    h = hashlib.sha256()
    root = Path(model_path).resolve()
    h.update(str(root).encode())
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for dist in ("openvino", "torch", "transformers", "sentence-transformers"):
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)}\n".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist}=-\n".encode())
    h.update(f"format={IR_FORMAT}".encode())
    return h.hexdigest()[:24]


def openvino_transformer(
    model: Any, model_path: str, cache: Path | None = None
) -> OpenVINOTransformer | None:
    """The transformer of the sentence-transformers ``model`` (loaded from ``model_path``)
    compiled with OpenVINO, from the cache or converted (and cached); None if it cannot be
    (the reason is logged)."""
    why = convertible(model)
    if why is not None:
        log.warning("embedding with torch: the model cannot run on OpenVINO: %s", why)
        return None
    try:
        import openvino as ov
    except ImportError:
        log.warning("embedding with torch: openvino is not installed (pip install openvino)")
        return None
    inputs = tuple(n for n in INPUTS if n in model.tokenizer.model_input_names)
    cache = cache_root() if cache is None else cache
    folder = cache / "openvino" / cache_key(model_path)
    core = ov.Core()
    config = cpu_config()
    if (folder / IR_FILE).exists():
        try:
            t0 = time.perf_counter()
            compiled = core.compile_model(core.read_model(folder / IR_FILE), "CPU", config)
            log.info("OpenVINO model read from %s in %.2f s", folder, time.perf_counter() - t0)
            return OpenVINOTransformer(compiled, inputs, "cache")
        except Exception as exc:  # noqa: BLE001 - a damaged cache entry: convert again
            log.warning("converting again: cannot read the cached model %s (%s)", folder, exc)
    try:
        t0 = time.perf_counter()
        converted = _convert(ov, model[0].auto_model, inputs)
        compiled = core.compile_model(converted, "CPU", config)
        log.info("converted the model to OpenVINO in %.2f s", time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - any conversion failure means: keep torch
        log.warning("embedding with torch: OpenVINO conversion failed (%s: %s)", type(exc), exc)
        return None
    _save(ov, converted, folder)
    return OpenVINOTransformer(compiled, inputs, "converted")


def _convert(ov: Any, auto_model: Any, inputs: tuple[str, ...]) -> Any:
    """``openvino.convert_model`` of ``auto_model`` behind a wrapper that calls it by keyword
    (transformers 5 refuses positional export arguments) and returns the last hidden state."""
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            return self.inner(**kwargs).last_hidden_state

    example = {n: torch.ones((2, 8), dtype=torch.int64) for n in inputs}
    shapes = [(n, [-1, -1], ov.Type.i64) for n in inputs]
    with torch.no_grad():
        return ov.convert_model(Wrapper(auto_model).eval(), example_input=example, input=shapes)


def _save(ov: Any, converted: Any, folder: Path) -> None:
    """Write the IR to ``folder`` atomically (a temporary sibling renamed into place); a
    failure only costs converting again next time."""
    tmp: Path | None = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        ov.save_model(converted, tmp / IR_FILE, compress_to_fp16=False)
        (tmp / "info.json").write_text(json.dumps({"format": IR_FORMAT}))
        os.replace(tmp, folder)
        tmp = None
    except OSError as exc:
        if not (folder / IR_FILE).exists():  # not another process winning the race
            log.warning("could not cache the OpenVINO model in %s (%s)", folder, exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- light start-up

LIGHT_FILE = "light.json"  # what a process needs to run a cached model without torch


def save_light(model: Any, model_path: str, dim: int, cache: Path | None = None) -> None:
    """Record, next to the cached IR of ``model``, what answering needs besides the IR (the
    tokenizer's settings as sentence-transformers uses them), so a later process can embed
    with OpenVINO and the ``tokenizers`` library alone, without importing torch,
    transformers or sentence-transformers (:func:`load_light`). Best effort."""
    folder = (cache_root() if cache is None else cache) / "openvino" / cache_key(model_path)
    if not (folder / IR_FILE).exists() or (folder / LIGHT_FILE).exists():
        return
    tok = model.tokenizer
    config = {
        "format": IR_FORMAT,
        "max_seq_length": int(model.max_seq_length),
        "do_lower_case": bool(getattr(model[0], "do_lower_case", False)),
        "dim": int(dim),
        "input_names": [n for n in tok.model_input_names if n in INPUTS],
        "pad_token_id": int(tok.pad_token_id or 0),
        "padding_side": str(tok.padding_side),
    }
    if not (Path(model_path) / "tokenizer.json").is_file():
        return
    try:
        from .files import atomic_write

        atomic_write(folder / LIGHT_FILE, json.dumps(config), mode=0o644)
    except OSError as exc:
        log.info("could not record the light start-up settings in %s (%s)", folder, exc)


def load_light(model_path: str, cache: Path | None = None) -> tuple[Any, dict] | None:
    """(OpenVINO model, settings) for a model converted and recorded before
    (:func:`save_light`), or None: then the caller loads it the full way."""
    folder = (cache_root() if cache is None else cache) / "openvino" / cache_key(model_path)
    try:
        config = json.loads((folder / LIGHT_FILE).read_text(encoding="utf-8"))
        if config.get("format") != IR_FORMAT or not (folder / IR_FILE).is_file():
            return None
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(folder / IR_FILE), "CPU", cpu_config())
    except Exception as exc:  # noqa: BLE001 - anything wrong: load the full way
        if (folder / LIGHT_FILE).exists():
            log.info("loading the model the full way: %s", exc)
        return None
    return OpenVINOTransformer(compiled, tuple(config["input_names"]), "cache"), config
