"""Export a trained SASRec for serving (ONNX or TorchScript), checked against torch.

The exported graph is the encoder with its tied item table: input `items`, a left-padded int64
history `[batch, max_len]` (id 0 = padding, the most recent item last; the batch axis is
dynamic, `max_len` is fixed), output `scores` `[batch, num_items]` (column j = item id j + 1)
and, with `user_vector=True`, `user_vector` `[batch, dim]` (the state after the last item).

How it is exported, and why (torch 2.13):

* ONNX goes through the `torch.export`-based exporter (`dynamo=True`, needs onnxscript). The
  TorchScript-based one writes a graph onnxruntime cannot run (`EyeLike` on booleans, from the
  attention mask's `torch.eye`) and is deprecated. The opset is pinned to 18: the lowest the
  exporter writes natively (17 produces an invalid `Split`), run by onnxruntime >= 1.14, and
  the file stays the same when torch's default opset moves. Weights are embedded in the one
  file (the exporter's default would put them in a `.data` file beside it).
* TorchScript is `torch.jit.trace` (`torch.jit.script` cannot compile the encoder: its
  `EncoderShape` attribute has no TorchScript type), wrapped in a small scripted module that
  rejects inputs that are not `[batch, max_len]`. Tracing fixes the model dimension and
  `max_len` as constants (its TracerWarnings say so), never the batch size. Every `torch.jit`
  function is deprecated in torch 2.13 with a DeprecationWarning; those warnings are silenced
  around these calls only.

A file is written atomically, and `export_checked` only renames it into place once the
exported model has reproduced torch's scores, so a failed export leaves nothing behind and an
existing file is kept until the new one is whole and checked.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqbench.engine.sasrec import SASRec
from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_file, atomic_write_bytes

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript"}
ONNX_OPSET = 18
INPUT_NAME = "items"
OUTPUT_NAMES = ("scores", "user_vector")
TOLERANCE = 1e-4  # float32 scores of the exported file vs torch's
ONNX_NEEDS = ('export --format onnx needs onnx, onnxscript and onnxruntime: '
              'pip install "seqbench[export]"')
_PROTOBUF_LIMIT = 2_000_000_000  # one ONNX file is one protobuf message: under 2 GiB

#: loggers of the ONNX exporter that talk about its own passes ("torchvision is not installed",
#: "Replaced initializer ...", torch.export's structured trace at DEBUG under `seqbench -v`)
#: and would flood the CLI's stderr; held at ERROR during the export only
_CHATTY_LOGGERS = ("torch", "torch.onnx", "torch.export", "torch._export", "torch.fx",
                   "torch.__trace", "onnx_ir", "onnxscript")


class ScoringModule(nn.Module):
    """What is exported: history in, scores over the whole catalogue out (and the user vector).

    A wrapper so the exported signature is a tuple of tensors whatever the flag, and so the
    engine's modules are exported as they are (in eval mode their dropout is the identity).
    """

    def __init__(self, model: SASRec, *, user_vector: bool = False) -> None:
        super().__init__()
        self.model = model
        self.user_vector = user_vector

    def forward(self, items: torch.Tensor) -> tuple[torch.Tensor, ...]:
        users = self.model.user_vectors(items)
        scores = users @ self.model.item_table().T
        return (scores, users) if self.user_vector else (scores,)


class _ShapeGuard(nn.Module):
    """Scripted around the traced model: a trace would silently mis-score a history whose
    length is not `max_len` (its positions are baked in), so say what is expected instead.
    (`max_len` has no class annotation: under `from __future__ import annotations` it would be
    the string 'int', which TorchScript cannot resolve; it infers the type from the value.)"""

    def __init__(self, traced: nn.Module, max_len: int) -> None:
        super().__init__()
        self.traced = traced
        self.max_len = max_len

    def forward(self, items: torch.Tensor):  # TorchScript infers the traced tuple
        if items.dim() != 2 or items.size(1) != self.max_len:
            raise RuntimeError(f"items must be [batch, {self.max_len}] int64 item ids, "
                               "left-padded with 0")
        return self.traced(items)


@dataclass(frozen=True)
class ExportCheck:
    """How the exported file's outputs compare with torch's on the same histories."""

    max_abs_diff: float  # max |score diff| over every history and item
    agreeing: int  # histories whose top-k lists (ids, in order) are the same
    total: int
    k: int = 10
    vector_diff: float | None = None  # max |user vector diff|, when that output was exported

    @property
    def top_agree(self) -> bool:
        return self.agreeing == self.total

    @property
    def passed(self) -> bool:
        """Within float32 tolerance (NaN fails); top-k ties may still swap near-equal items."""
        diffs = [self.max_abs_diff] + ([self.vector_diff] if self.vector_diff is not None else [])
        return all(d < TOLERANCE for d in diffs)


def format_for(path: Path, fmt: str | None) -> str:
    """The export format: `fmt` when given (checked), else the one `path`'s suffix names."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise SeqbenchError(f"--format {fmt!r} is not a format seqbench can export; "
                                f"choose {' or '.join(FORMATS)}")
        return fmt
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise SeqbenchError(f"--out {path}: cannot tell the format from the suffix "
                            f"{path.suffix or '(none)'!r}; give --format onnx or torchscript "
                            "(or name the file .onnx, .pt or .ts)")
    return found


def require_onnx() -> None:
    """Fail early, in one line, where the optional ONNX packages are missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise SeqbenchError(ONNX_NEEDS) from None


def export_model(model: SASRec, path: Path, fmt: str, *, user_vector: bool = False) -> None:
    """Write `model` (with its tied item table) to `path` as `fmt`; atomically.

    The model is copied to CPU float32 in eval mode first, so the caller's model keeps its
    device and training flag.
    """
    fmt = format_for(path, fmt)
    if fmt == "onnx":
        require_onnx()
    module = ScoringModule(_serving_copy(model), user_vector=user_vector).eval()
    example = _example_input(model.shape.num_items, model.shape.max_len)
    if fmt == "onnx":
        atomic_write_bytes(path, _onnx_bytes(module, example, model))
    else:
        scripted = _torchscript(module, example, model.shape.max_len)
        with _jit_quiet(), atomic_file(path) as f:
            torch.jit.save(scripted, f)
    log.debug("exported %s to %s (%d bytes)", fmt, path, path.stat().st_size)


def check_export(model: SASRec, path: Path, fmt: str, histories: np.ndarray, *,
                 k: int = 10) -> ExportCheck:
    """Run the exported file (onnxruntime / torch.jit.load) and torch on `histories`.

    `histories` is `[n, max_len]` int64, left-padded. Only the scores are compared (and the
    user vectors, where the file has them); the top-k lists break ties by lower item id, as
    evaluation does.
    """
    fmt = format_for(path, fmt)
    histories = _checked_histories(histories, model.shape.max_len)
    serving = _serving_copy(model)
    with torch.no_grad():
        want = ScoringModule(serving, user_vector=True)(torch.from_numpy(histories))
    ref_scores, ref_users = (t.numpy() for t in want)
    got = _run_onnx(path, histories) if fmt == "onnx" else _run_torchscript(path, histories)
    scores = got[0]
    if scores.shape != ref_scores.shape:
        raise SeqbenchError(f"{path}: the exported model returned scores of shape "
                            f"{list(scores.shape)}; expected {list(ref_scores.shape)}")
    diff = _max_abs_diff(scores, ref_scores)
    vector_diff = _max_abs_diff(got[1], ref_users) if len(got) > 1 else None
    mine, theirs = top_k(scores, k), top_k(ref_scores, k)
    agreeing = int((mine == theirs).all(axis=1).sum())
    return ExportCheck(diff, agreeing, len(histories), min(k, scores.shape[1]), vector_diff)


def export_checked(model: SASRec, path: Path, fmt: str, histories: np.ndarray, *,
                   user_vector: bool = False, k: int = 10) -> ExportCheck:
    """Export to a hidden name beside `path`, check it, and only then rename it to `path`.

    A check over the tolerance is a `SeqbenchError` and nothing is left at `path` but what was
    there before.
    """
    fmt = format_for(path, fmt)
    staging = path.with_name(f".{path.name}.{os.getpid()}.export")
    try:
        export_model(model, staging, fmt, user_vector=user_vector)
        check = check_export(model, staging, fmt, histories, k=k)
        if not check.passed:
            what = (f"max |score diff| {check.max_abs_diff:.3g}" if check.vector_diff is None
                    else f"max |score diff| {check.max_abs_diff:.3g}, max |user vector diff| "
                    f"{check.vector_diff:.3g}")
            raise SeqbenchError(f"{path}: the exported {fmt} model does not reproduce torch's "
                                f"scores ({what}; expected below {TOLERANCE:g}); nothing was "
                                "written")
        os.replace(staging, path)
    except OSError as exc:
        raise SeqbenchError(f"--out {path}: cannot write the exported model "
                            f"({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    return check


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """[n, k] item ids by score (descending), ties by lower id; NaN ranks last."""
    k = min(k, scores.shape[1])
    out = np.empty((len(scores), k), dtype=np.int64)
    for row, values in enumerate(np.nan_to_num(scores, nan=-np.inf)):
        kth = np.partition(values, -k)[-k]
        candidates = np.flatnonzero(values >= kth)  # every tie at the k-th score is in
        order = np.lexsort((candidates, -values[candidates]))
        out[row] = candidates[order[:k]] + 1
    return out


# ---------------------------------------------------------------------------------------------


def _serving_copy(model: SASRec) -> SASRec:
    """A CPU float32 eval-mode copy: export and reference must not touch the caller's model."""
    serving = copy.deepcopy(model).to("cpu", torch.float32).eval()
    for p in serving.parameters():
        p.requires_grad_(False)
    return serving


def _example_input(num_items: int, max_len: int) -> torch.Tensor:
    """Two histories, one full, one half padding: batch 2, so the exporter keeps the batch
    axis symbolic (sizes 0 and 1 are specialised), and padding on the traced path."""
    ids = torch.arange(2 * max_len, dtype=torch.int64).view(2, max_len) % num_items + 1
    ids[1, : max_len // 2] = 0
    return ids


def _onnx_bytes(module: ScoringModule, example: torch.Tensor, model: SASRec) -> bytes:
    size = sum(p.numel() * 4 for p in model.parameters())
    if size >= _PROTOBUF_LIMIT:
        raise SeqbenchError(f"the model's weights take {size / 1e9:.1f} GB; a single-file ONNX "
                            "export must stay under 2 GB (use --format torchscript)")
    outputs = list(OUTPUT_NAMES[: 2 if module.user_vector else 1])
    batch = torch.export.Dim("batch", min=1)
    with _onnx_quiet():
        program = torch.onnx.export(
            module, (example,), None, dynamo=True, input_names=[INPUT_NAME],
            output_names=outputs, dynamic_shapes={"items": {0: batch}},
            opset_version=ONNX_OPSET, verbose=False, optimize=True, external_data=False)
    if program is None:  # the signature allows it; with f=None it never happens
        raise SeqbenchError("the ONNX exporter returned no program")
    return program.model_proto.SerializeToString()


def _torchscript(module: ScoringModule, example: torch.Tensor, max_len: int) -> Any:
    with _jit_quiet(), torch.no_grad():
        traced = torch.jit.trace(module, (example,))
        return torch.jit.script(_ShapeGuard(traced, max_len))


def _run_onnx(path: Path, histories: np.ndarray) -> list[np.ndarray]:
    require_onnx()
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    failures = (state.Fail, state.InvalidArgument, state.InvalidGraph, state.InvalidProtobuf,
                state.NoSuchFile, state.NotImplemented, state.RuntimeException)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return [np.asarray(o) for o in session.run(None, {INPUT_NAME: histories})]
    except failures as exc:
        raise SeqbenchError(f"{path}: onnxruntime cannot run the exported model: "
                            f"{_first_line(exc)}") from None


def _run_torchscript(path: Path, histories: np.ndarray) -> list[np.ndarray]:
    try:
        with _jit_quiet():
            loaded = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            out = loaded(torch.from_numpy(histories))
    except (RuntimeError, torch.jit.Error) as exc:  # jit.Error: a scripted `raise`
        raise SeqbenchError(f"{path}: torch.jit cannot run the exported model: "
                            f"{_first_line(exc)}") from None
    return [t.numpy() for t in out]


def _checked_histories(histories: np.ndarray, max_len: int) -> np.ndarray:
    histories = np.asarray(histories)
    if histories.ndim != 2 or histories.shape[1] != max_len or len(histories) == 0:
        raise SeqbenchError(f"histories to check the export with must be [n >= 1, {max_len}] "
                            f"item ids; got shape {list(histories.shape)}")
    return np.ascontiguousarray(histories, dtype=np.int64)


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max(initial=0.0))


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


@contextlib.contextmanager
def _jit_quiet() -> Iterator[None]:
    """torch 2.13 deprecates every torch.jit function; the TracerWarnings are about the model
    dimension and max_len becoming constants, which they are. Nothing else is hidden."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python integer",
                                category=torch.jit.TracerWarning)
        yield


@contextlib.contextmanager
def _onnx_quiet() -> Iterator[None]:
    """The exporter's own progress and pass logs at ERROR only, its stdout progress lines and
    one FutureWarning torch.export raises about itself (pytree's LeafSpec) dropped."""
    levels = {name: logging.getLogger(name).level for name in _CHATTY_LOGGERS}
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`",
                                    category=FutureWarning)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
