"""`seqbench export` and `seqbench.inference.export`: the exported ONNX / TorchScript file
reproduces torch's scores (float32, max |diff| < 1e-4, same top-10), keeps a dynamic batch axis,
has the user-vector output on request, and is written atomically (a refused or failed export
leaves nothing new; an existing file stays until the new one is whole and checked)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import seqbench.inference.export as export_module
from seqbench.engine.encoder import EncoderShape
from seqbench.engine.sasrec import SASRec
from seqbench.errors import SeqbenchError
from seqbench.inference.export import (
    FORMATS,
    ONNX_NEEDS,
    ONNX_OPSET,
    ExportCheck,
    check_export,
    export_checked,
    export_model,
    format_for,
    top_k,
)
from tests.conftest import Cli

# torch 2.13 deprecates every torch.jit function; loading the exported file here is the point
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.load` is deprecated:DeprecationWarning")

SHAPE = EncoderShape(num_items=500, max_len=20, dim=32, layers=2, heads=2, dropout=0.2)
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


@pytest.fixture(scope="module")
def model() -> SASRec:
    """A random SASRec with trained-like magnitudes: scores spread over about +-10, not the
    +-0.01 of the N(0, 0.02) initialisation, so the float32 tolerance is tested honestly.
    Left in training mode on purpose: export must switch dropout off by itself."""
    torch.manual_seed(0)
    net = SASRec(SHAPE)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
        net.encoder.item_emb.weight[0].zero_()
    return net


@pytest.fixture(scope="module")
def histories() -> np.ndarray:
    """100 left-padded histories of every length from 1 to max_len."""
    rng = np.random.default_rng(0)
    out = np.zeros((100, SHAPE.max_len), dtype=np.int64)
    for row in range(100):
        n = 1 + row % SHAPE.max_len
        out[row, -n:] = rng.integers(1, SHAPE.num_items + 1, n)
    return out


def torch_outputs(model: SASRec, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and user vectors the way evaluation computes them (eval mode, no dropout)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        users = model.user_vectors(torch.from_numpy(items))
        scores = users @ model.item_table().T
    model.train(was)
    return scores.numpy(), users.numpy()


@pytest.fixture(scope="module")
def onnx_file(model: SASRec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_model(model, path, "onnx", user_vector=True)
    return path


@pytest.fixture(scope="module")
def torchscript_file(model: SASRec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ts") / "model.pt"
    export_model(model, path, "torchscript", user_vector=True)
    return path


def run_onnx(path: Path, items: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"items": items})


def run_torchscript(path: Path, items: np.ndarray) -> list[np.ndarray]:
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        return [t.numpy() for t in loaded(torch.from_numpy(items))]


# --- the exported files ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_matches_torch(model: SASRec, histories: np.ndarray, fmt: str,
                                  request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(f"{fmt}_file")
    check = check_export(model, path, fmt, histories)
    assert check.total == 100 and check.k == 10
    assert check.max_abs_diff < 1e-4
    assert check.vector_diff is not None and check.vector_diff < 1e-4
    assert check.agreeing == 100 and check.top_agree and check.passed
    scores, _ = torch_outputs(model, histories)
    assert scores.std() > 1.0  # the scale the tolerance is meant for, not near-zero scores
    assert model.training  # the caller's model keeps its mode


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("batch", [1, 7])
def test_batch_axis_is_dynamic(model: SASRec, histories: np.ndarray, fmt: str, batch: int,
                               request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(f"{fmt}_file")
    items = histories[-batch:]
    got = (run_onnx if fmt == "onnx" else run_torchscript)(path, items)
    scores, users = torch_outputs(model, items)
    assert got[0].shape == (batch, SHAPE.num_items) and got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], scores, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got[1], users, rtol=0, atol=1e-4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_user_vector_output_is_the_models_user_vectors(model: SASRec, histories: np.ndarray,
                                                       fmt: str,
                                                       request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(f"{fmt}_file")
    got = (run_onnx if fmt == "onnx" else run_torchscript)(path, histories)
    model.eval()
    with torch.no_grad():
        want = model.user_vectors(torch.from_numpy(histories)).numpy()
    model.train()
    assert len(got) == 2 and got[1].shape == (100, SHAPE.dim)
    np.testing.assert_allclose(got[1], want, rtol=0, atol=1e-5)
    # column j is item id j + 1: the score is the dot product with that item's embedding row
    row = model.encoder.item_emb.weight[42].detach().numpy()
    np.testing.assert_allclose(got[0][:, 41], want @ row, rtol=0, atol=1e-4)


def test_onnx_graph_contract(onnx_file: Path) -> None:
    import onnx

    graph = onnx.load(str(onnx_file))
    onnx.checker.check_model(graph)
    assert [(o.domain, o.version) for o in graph.opset_import if o.domain == ""] == [
        ("", ONNX_OPSET)]
    [items] = graph.graph.input
    dims = items.type.tensor_type.shape.dim
    assert items.name == "items" and items.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert dims[0].dim_param and not dims[0].dim_value  # symbolic batch
    assert dims[1].dim_value == SHAPE.max_len
    assert [o.name for o in graph.graph.output] == ["scores", "user_vector"]
    assert not list(onnx_file.parent.glob("*.data"))  # weights inside the one file


def test_scores_only_by_default(model: SASRec, histories: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "scores.pt"
    export_model(model, path, "torchscript")
    got = run_torchscript(path, histories[:3])
    assert len(got) == 1 and got[0].shape == (3, SHAPE.num_items)
    check = check_export(model, path, "torchscript", histories)
    assert check.vector_diff is None and check.passed


def test_torchscript_rejects_a_history_of_the_wrong_length(torchscript_file: Path) -> None:
    loaded = torch.jit.load(str(torchscript_file))
    with pytest.raises(torch.jit.Error, match=r"\[batch, 20\]"):
        loaded(torch.ones(2, SHAPE.max_len - 1, dtype=torch.int64))


def test_onnx_rejects_a_history_of_the_wrong_length(onnx_file: Path) -> None:
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    with pytest.raises(InvalidArgument):
        run_onnx(onnx_file, np.ones((2, SHAPE.max_len + 1), dtype=np.int64))


def test_check_reports_differences(model: SASRec, histories: np.ndarray,
                                   torchscript_file: Path) -> None:
    other = SASRec(SHAPE)  # another model: the file does not reproduce its scores
    check = check_export(other, torchscript_file, "torchscript", histories)
    assert check.max_abs_diff > 1e-2 and not check.passed
    assert check.agreeing < check.total and not check.top_agree


def test_check_wants_max_len_histories(model: SASRec, torchscript_file: Path) -> None:
    with pytest.raises(SeqbenchError, match=r"\[n >= 1, 20\]"):
        check_export(model, torchscript_file, "torchscript", np.ones((5, 19), dtype=np.int64))


def test_top_k_breaks_ties_by_lower_id() -> None:
    scores = np.array([[1.0, 3.0, 3.0, np.nan, 2.0, 3.0]], dtype=np.float32)
    assert top_k(scores, 4).tolist() == [[2, 3, 6, 5]]
    assert top_k(scores, 10).shape == (1, 6)


def test_formats_by_suffix() -> None:
    assert format_for(Path("m.onnx"), None) == "onnx"
    assert format_for(Path("m.PT"), None) == "torchscript"
    assert format_for(Path("m.ts"), None) == "torchscript"
    assert format_for(Path("m.bin"), "onnx") == "onnx"
    with pytest.raises(SeqbenchError, match="--format onnx or torchscript"):
        format_for(Path("m.bin"), None)
    with pytest.raises(SeqbenchError, match="--format 'tflite'"):
        format_for(Path("m.onnx"), "tflite")


# --- atomic writing ----------------------------------------------------------------------------


def test_failed_check_keeps_the_old_file_and_writes_nothing(
        model: SASRec, histories: np.ndarray, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "model.pt"
    out.write_bytes(b"the old model")
    monkeypatch.setattr(export_module, "TOLERANCE", 0.0)  # even a 0.0 diff is not below it
    with pytest.raises(SeqbenchError, match=r"model\.pt: the exported torchscript model does "
                       r"not reproduce torch's scores .*expected below 0\)"):
        export_checked(model, out, "torchscript", histories)
    assert out.read_bytes() == b"the old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_failure_mid_write_leaves_nothing(model: SASRec, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def torn(module: object, f: object) -> None:
        f.write(b"half a model")  # type: ignore[attr-defined]
        raise RuntimeError("disk gone")

    monkeypatch.setattr(torch.jit, "save", torn)
    out = tmp_path / "model.pt"
    with pytest.raises(RuntimeError, match="disk gone"):
        export_model(model, out, "torchscript")
    assert list(tmp_path.iterdir()) == []


def test_successful_export_replaces_atomically(model: SASRec, histories: np.ndarray,
                                               tmp_path: Path) -> None:
    out = tmp_path / "model.ts"
    out.write_bytes(b"the old model")
    check = export_checked(model, out, "torchscript", histories, user_vector=True)
    assert isinstance(check, ExportCheck) and check.passed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ts"]
    assert len(run_torchscript(out, histories[:2])) == 2


def test_missing_onnx_packages_is_one_line(model: SASRec, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(SeqbenchError) as error:
        export_model(model, tmp_path / "m.onnx", "onnx")
    assert str(error.value) == ONNX_NEEDS
    assert list(tmp_path.iterdir()) == []


# --- the command, on a real (small, two-epoch) run ---------------------------------------------


@pytest.fixture
def run_dir(trained_run: Path) -> Path:
    """The small finished bench run of tests/inference/conftest.py (trained once a session)."""
    return trained_run


def test_cli_exports_onnx_and_checks_it(cli: Cli, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "serve" / "sasrec.onnx"
    result = cli("export", str(run_dir), "--out", str(out), "--user-vector")
    assert result.code == 0, result.err
    assert "input items int64 [batch, 20] (left-padded with 0) -> scores [batch, 200], " \
           "user_vector [batch, 32]" in result.out
    assert "top-10 agree for 100/100 histories" in result.out
    diff = float(result.out.split("max |score diff| ")[1].split()[0])
    assert diff < 1e-4
    from seqbench.inference import load

    rec = load(run_dir)
    items = rec.sample_histories(5)
    scores, users = run_onnx(out, items)
    with torch.no_grad():
        want = rec.model.user_vectors(torch.from_numpy(items))
        np.testing.assert_allclose(users, want.numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(scores, (want @ rec.model.item_table().T).numpy(), rtol=0,
                                   atol=1e-4)
    assert sorted(p.name for p in out.parent.iterdir()) == ["sasrec.onnx"]


def test_cli_torchscript_and_force(cli: Cli, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sasrec.pt"
    out.write_bytes(b"keep me")
    refused = cli("export", str(run_dir), "--out", str(out))
    assert refused.code != 0
    assert refused.err.strip() == f"error: --out {out}: the file exists; --force replaces it"
    assert out.read_bytes() == b"keep me"
    result = cli("export", str(run_dir), "--out", str(out), "--force")
    assert result.code == 0, result.err
    assert "torchscript" in result.out and "top-10 agree for 100/100 histories" in result.out
    assert len(run_torchscript(out, np.ones((3, 20), dtype=np.int64))) == 1


def test_cli_failed_check_is_an_error_and_keeps_nothing_new(
        cli: Cli, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "TOLERANCE", 0.0)
    out = tmp_path / "sasrec.ts"
    result = cli("export", str(run_dir), "--out", str(out))
    assert result.code == 1
    [line] = result.err.strip().splitlines()
    assert line.startswith(f"error: {out}: the exported torchscript model does not reproduce")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "fragment"), [
    (["--out", "{tmp}/m.bin"], "cannot tell the format from the suffix '.bin'"),
    (["--out", "{tmp}/m.onnx", "--format", "tflite"], "--format 'tflite' is not a format"),
    (["--out", "{tmp}/blocker/m.onnx"], "blocker is a file, not a directory"),
    (["--out", "{tmp}"], "is a directory"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(cli: Cli, run_dir: Path, tmp_path: Path,
                                                      args: list[str], fragment: str) -> None:
    (tmp_path / "blocker").write_text("a file\n")
    result = cli("export", str(run_dir), *(a.format(tmp=tmp_path) for a in args))
    assert result.code != 0
    [line] = result.err.strip().splitlines()
    assert line.startswith("error: ") and fragment in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_cli_without_onnx_packages(cli: Cli, run_dir: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    result = cli("export", str(run_dir), "--out", str(tmp_path / "m.onnx"))
    assert result.code == 1
    assert result.err.strip() == f"error: {ONNX_NEEDS}"
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_directory_that_is_no_run(cli: Cli, tmp_path: Path) -> None:
    result = cli("export", str(tmp_path), "--out", str(tmp_path / "m.pt"))
    assert result.code == 1
    [line] = result.err.strip().splitlines()
    assert "not a seqbench run directory" in line
    assert list(tmp_path.iterdir()) == []
