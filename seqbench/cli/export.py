"""`seqbench export RUN --out FILE`: a finished run's model as ONNX or TorchScript, for serving,
checked against torch before it is kept (docs/export.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from seqbench.cli.app import app
from seqbench.cli.output import console
from seqbench.errors import SeqbenchError

#: histories from the run's data the exported file is checked on
CHECKED_HISTORIES = 100
TOP_K = 10


@app.command(help=escape(
    "Export a finished bench or finetune run for serving, as ONNX (onnxruntime, Triton, ...) or "
    "TorchScript (torch.jit.load, libtorch): the encoder with its tied item table. Input "
    "`items`: int64 [batch, max_len] internal item ids, left-padded with 0 (a shorter history "
    "is padded on the left, a longer one keeps its last max_len items; the batch size is free). "
    "Output `scores`: float32 [batch, num_items], column j = item id j+1; with --user-vector "
    "also `user_vector` [batch, dim]. The file is written atomically and then run on 100 "
    "histories of the run's data: it prints the max |score diff| against torch and how many "
    "top-10 lists agree, and keeps nothing if the diff is not below 1e-4. ONNX needs the "
    "export extra: pip install 'seqbench[export]'."))
def export(
    run: Annotated[Path, typer.Argument(help="A finished run directory.", show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", dir_okay=False, help="The file to write (.onnx, or .pt/.ts for "
        "TorchScript).", show_default=False)],
    output_format: Annotated[str | None, typer.Option(
        "--format", "-f", help="onnx or torchscript (default: from --out's suffix: .onnx is "
        "onnx, .pt and .ts are torchscript).", show_default=False)] = None,
    user_vector: Annotated[bool, typer.Option(
        "--user-vector", help=escape("Add a second output, the user vector [batch, dim] (for "
                                     "an approximate nearest-neighbour index over the item "
                                     "table)."))] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing --out file (only once the "
                                        "new one is written and checked).")] = False,
) -> None:
    from seqbench.inference.export import export_checked, format_for, require_onnx
    from seqbench.inference.files import check_output
    from seqbench.report.format import format_bytes

    fmt = format_for(out, output_format)
    check_output(out, force=force, suffixes=None)  # the format has been checked
    if fmt == "onnx":
        require_onnx()
    from seqbench.inference import load

    with console.status(f"Loading {escape(str(run))} ..."):
        rec = load(run)
        histories = rec.sample_histories(CHECKED_HISTORIES)
    if len(histories) == 0:
        raise SeqbenchError(f"{run}: the run's data has no test histories to check the export "
                            "with")
    shape = rec.shape
    with console.status(f"Exporting {escape(rec.run_id)} as {fmt} ..."):
        check = export_checked(rec.model, out, fmt, histories, user_vector=user_vector, k=TOP_K)
    outputs = f"scores [batch, {shape.num_items}]" + (
        f", user_vector [batch, {shape.dim}]" if user_vector else "")
    console.print(escape(f"{out}: {fmt}, {format_bytes(out.stat().st_size)}; input items int64 "
                         f"[batch, {shape.max_len}] (left-padded with 0) -> {outputs}"),
                  highlight=False, soft_wrap=True)
    ties = "" if check.top_agree else " (the others swap items whose scores differ by less"
    console.print(f"checked on {check.total} histories of the run's data: max |score diff| "
                  f"{check.max_abs_diff:.2e} against torch (below 1e-4); top-{check.k} agree "
                  f"for {check.agreeing}/{check.total} histories"
                  + (f"{ties} than the tolerance)" if ties else ""), highlight=False,
                  soft_wrap=True)
