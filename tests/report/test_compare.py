"""`seqbench compare`: tables, groups, baselines and exports built from run directories alone.

Every run here is written by hand in the documented format (config.json, events.jsonl,
summary.json), so the tests also pin down what compare relies on in those files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from seqbench.errors import SeqbenchError
from seqbench.report.compare import CompareOptions, compare_command
from tests.conftest import Cli

MIB = 1024**2
REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_clock = [1_800_000_000.0]


def fake_run(runs_dir: Path, *, dataset: str = "beauty", loss: str = "ce",
             backend: str | None = None, seed: int = 0, model: str = "sasrec",
             metrics: dict[str, dict[str, float]] | None = None, memory_mib: float = 100.0,
             memory_kind: str = "cuda-allocated", epoch_seconds: float = 1.0, epochs: int = 3,
             status: str = "finished", parameters: int = 1000, device: str = "NVIDIA H100",
             finetune: dict[str, Any] | None = None, pretrain_rank: int | None = None,
             torn_tail: bool = False, name: str | None = None) -> Path:
    """Write one run directory the way RunRecorder does; returns its path.

    `metrics` are the test metrics per protocol (default: NDCG@10 0.1 and HR@10 0.2 on full);
    `status` finished writes summary.json, failed a failed event and the short failure summary,
    running neither. `pretrain_rank` makes it an S3Rec pretraining run with that rank (0: full).
    """
    _clock[0] += 10
    started = _clock[0]
    is_pretrain = pretrain_rank is not None
    variant = None if not is_pretrain else (f"r{pretrain_rank}" if pretrain_rank else "full")
    run_id = name or (f"20270115-{int(started) % 1_000_000:06d}-{dataset}-{model}-"
                      f"{variant or loss}-s{seed}-{int(started) % 9973:04x}")
    path = runs_dir / run_id
    path.mkdir(parents=True)
    metrics = metrics if metrics is not None else {"full": {"NDCG@10": 0.1, "HR@10": 0.2}}
    backend = backend or {"ce": "ce[torch]", "cce": "cce[cuda-kernel]"}.get(loss, f"{loss}[x]")
    resolved: dict[str, Any] = {"model": "s3rec-pretrain" if is_pretrain else model,
                                "device": device, "parameters": parameters}
    account = None
    if is_pretrain:
        heads = 2 * (pretrain_rank * 64 * 2 if pretrain_rank else 64 * 64)
        account = {"heads": [], "total": 10_000 + heads, "total_full_rank": 10_000 + 2 * 4096,
                   "total_reduction": heads / (2 * 4096) - 1, "encoder": 9000,
                   "attribute_embeddings": 1000}
        resolved.update(rank=pretrain_rank or None, parameter_account=account,
                        parameters=account["total"])
    else:
        resolved["loss_backend"] = backend
    config = {"data": {"dataset": dataset}, "train": {"loss": "ce" if is_pretrain else loss,
                                                      "seed": seed},
              "resolved": resolved,
              "environment": {"run_id": run_id, "started_unix": started,
                              "hostname": "elsewhere.invalid", "pid": 1}}
    if finetune is not None:
        config["finetune"] = finetune
    (path / "config.json").write_text(json.dumps(config))

    lines = [{"event": "start", "time": started, "run_id": run_id}]
    for epoch in range(1, epochs + 1):
        valid = None if is_pretrain else {
            protocol: {name: value * epoch / epochs for name, value in values.items()}
            for protocol, values in metrics.items()}
        lines.append({"event": "epoch", "time": started + epoch, "epoch": epoch,
                      "train_loss": 9.0 - epoch, "losses": {"loss": 9.0 - epoch},
                      "valid": valid, "epoch_seconds": epoch_seconds, "valid_seconds": 0.1,
                      "sequences_per_second": 1000.0,
                      "peak_memory_bytes": int(memory_mib * MIB) - (epochs - epoch),
                      "memory_kind": memory_kind, "device": "cuda"})
    if status == "finished":
        lines.append({"event": "end", "time": started + epochs + 1, "status": "finished"})
    elif status == "failed":
        lines.append({"event": "failed", "time": started + epochs + 1,
                      "error": {"type": "RuntimeError", "message": "CUDA out of memory"}})
    text = "".join(json.dumps(line) + "\n" for line in lines)
    if torn_tail:
        text += json.dumps({"event": "epoch", "epoch": epochs + 1})[:25]  # no newline yet
    (path / "events.jsonl").write_text(text)

    if status == "finished":
        summary: dict[str, Any] = {
            "status": "finished", "run_id": run_id, "path": str(path), "dataset": dataset,
            "model": "s3rec-pretrain" if is_pretrain else model, "seed": seed,
            "device": device, "parameters": resolved["parameters"], "epochs_run": epochs,
            "stop_reason": "epochs", "mean_epoch_seconds": epoch_seconds,
            "peak_memory_bytes": int(memory_mib * MIB), "memory_kind": memory_kind,
            "sequences_per_second": 1000.0}
        if is_pretrain:
            summary.update(variant=variant, final_losses={"loss": 1.0},
                           parameter_account=account)
        else:
            summary.update(loss=loss, loss_backend=backend, best_epoch=epochs,
                           valid=metrics, test=metrics)
        (path / "summary.json").write_text(json.dumps(summary))
    elif status == "failed":
        (path / "summary.json").write_text(json.dumps(
            {"status": "failed", "run_id": run_id, "error": {"message": "CUDA out of memory"}}))
    return path


def run_compare(**options: Any) -> str:
    """compare_command's stdout for these options, on a wide console without colour."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=options.pop("width", 400), color_system=None)
    compare_command(CompareOptions(**options), console)
    return buffer.getvalue()


def json_rows(runs_dir: Path, **options: Any) -> list[dict[str, Any]]:
    return json.loads(run_compare(runs_dir=runs_dir, output_format="json", **options))


def markdown_rows(text: str) -> list[list[str]]:
    """Cells of a markdown table, split on unescaped pipes."""
    rows = []
    for line in text.strip().splitlines():
        assert line.startswith("| ") or line.startswith("|-") or line.startswith("|"), line
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([cell.strip() for cell in cells])
    return rows


# --- grouping and the baseline ----------------------------------------------------------------


def test_group_by_gives_mean_and_sample_std_over_seeds(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, ndcg in enumerate([0.10, 0.12, 0.17]):
        fake_run(runs, loss="ce", seed=seed, metrics={"full": {"NDCG@10": ndcg}},
                 epoch_seconds=1.0 + seed)
    fake_run(runs, loss="cce", seed=0, metrics={"full": {"NDCG@10": 0.11}})

    rows = json_rows(runs, group_by=["dataset", "loss"], metrics=["NDCG@10"])
    by_loss = {row["loss"]: row for row in rows}
    ce, cce = by_loss["ce"], by_loss["cce"]
    assert ce["n"] == 3 and ce["seeds"] == [0, 1, 2]
    assert ce["NDCG@10_mean"] == pytest.approx(0.13)
    assert ce["NDCG@10_std"] == pytest.approx(statistics.stdev([0.10, 0.12, 0.17]))
    assert ce["NDCG@10_std"] == pytest.approx(0.036055512754639894)  # sample (n-1), not 0.0294
    assert ce["mean_epoch_seconds_mean"] == pytest.approx(2.0)
    assert cce["n"] == 1 and cce["NDCG@10_mean"] == 0.11 and cce["NDCG@10_std"] is None

    table = run_compare(runs_dir=runs, group_by=["dataset", "loss"], metrics=["NDCG@10"])
    assert "0.1300 ± 0.0361" in table
    assert "0.1100 ±" not in table and "0.1100" in table  # a group of one: just the value
    assert "seeds" in table


def test_groups_never_mix_protocols(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    both = {"full": {"NDCG@10": 0.05}, "sampled-99": {"NDCG@10": 0.35}}
    for seed in range(2):
        fake_run(runs, seed=seed, metrics=both)

    rows = json_rows(runs, group_by=["dataset", "loss"])
    assert sorted((row["protocol"], row["NDCG@10_mean"]) for row in rows) == [
        ("full", pytest.approx(0.05)), ("sampled-99", pytest.approx(0.35))]
    assert json_rows(runs, protocols=["sampled-99"])[0]["protocol"] == "sampled-99"
    assert len(json_rows(runs)) == 4  # one row per run and protocol


def test_group_by_unknown_field_is_an_error(tmp_path: Path, cli: Cli) -> None:
    fake_run(tmp_path)
    result = cli("compare", "--runs-dir", str(tmp_path), "--group-by", "dataset,colour")
    assert result.code == 1
    assert "colour" in result.err and "dataset" in result.err and "loss" in result.err


def test_baseline_adds_relative_columns(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fake_run(runs, loss="ce", memory_mib=1000, epoch_seconds=2.0,
             metrics={"full": {"NDCG@10": 0.100}})
    fake_run(runs, loss="cce", memory_mib=650, epoch_seconds=1.66,
             metrics={"full": {"NDCG@10": 0.105}})
    fake_run(runs, dataset="ml-1m", loss="cce", memory_mib=50)  # no ce on this dataset

    rows = json_rows(runs, baseline="ce", metrics=["NDCG@10"])
    by_key = {(row["dataset"], row["loss"]): row for row in rows}
    cce = by_key[("beauty", "cce")]
    assert cce["peak_memory_vs_ce_pct"] == pytest.approx(-35.0)
    assert cce["epoch_seconds_vs_ce_pct"] == pytest.approx(-17.0)
    assert cce["NDCG@10_vs_ce_pct"] == pytest.approx(5.0)
    assert by_key[("beauty", "ce")]["peak_memory_vs_ce_pct"] == 0.0
    assert by_key[("ml-1m", "cce")]["peak_memory_vs_ce_pct"] is None

    header, _, *body = markdown_rows(run_compare(runs_dir=runs, baseline="ce",
                                                 metrics=["NDCG@10"], output_format="markdown"))
    column = {name: i for i, name in enumerate(header)}
    cells = {row[column["loss"]]: row for row in body if row[column["dataset"]] == "beauty"}
    assert cells["cce[cuda-kernel]"][column["memory vs ce"]] == "-35.0%"
    assert cells["cce[cuda-kernel]"][column["epoch s vs ce"]] == "-17.0%"
    assert cells["cce[cuda-kernel]"][column["NDCG@10 vs ce"]] == "+5.0%"
    assert cells["ce[torch]"][column["memory vs ce"]] == "—"

    table = run_compare(runs_dir=runs, baseline="ce", metrics=["NDCG@10"])
    ml_line = next(line for line in table.splitlines() if "ml-1m" in line)
    assert ml_line.count("no ce") == 3  # NDCG@10, memory and epoch s: not an error


def test_unknown_baseline_is_an_error_listing_the_losses_there(tmp_path: Path,
                                                              cli: Cli) -> None:
    """`--baseline bogus` used to exit 0 with every relative cell reading "no bogus"."""
    fake_run(tmp_path, loss="ce")
    fake_run(tmp_path, loss="cce")
    fake_run(tmp_path, pretrain_rank=16)  # its "pretrain" loss is nothing to compare against
    result = cli("compare", "--runs-dir", str(tmp_path), "--baseline", "bogus")
    assert result.code == 1 and result.out == ""
    assert result.err.strip() == ("error: --baseline 'bogus': no compared run has this loss; "
                                  "losses of these runs: cce, ce")

    backend = cli("compare", "--runs-dir", str(tmp_path), "--baseline", "cce[cuda-kernel]")
    assert backend.code == 1 and "its loss is 'cce'" in backend.err
    with pytest.raises(SeqbenchError, match=r"losses of these runs: cce$"):
        run_compare(runs_dir=tmp_path, losses=["cce"], baseline="ce")  # filtered out
    assert "cce" in run_compare(runs_dir=tmp_path, baseline="cce")  # a loss that is there


def test_baseline_compares_memory_only_within_its_kind(tmp_path: Path) -> None:
    fake_run(tmp_path, loss="ce", memory_kind="cpu-rss", device="cpu")
    fake_run(tmp_path, loss="cce", memory_kind="cuda-allocated")
    rows = {row["loss"]: row for row in json_rows(tmp_path, baseline="ce")}
    assert rows["cce"]["peak_memory_vs_ce_pct"] is None
    assert rows["cce"]["epoch_seconds_vs_ce_pct"] is None  # CPU seconds against GPU seconds
    table = run_compare(runs_dir=tmp_path, baseline="ce")
    assert "other kind" in table and "other device" in table


# --- export formats ---------------------------------------------------------------------------


def test_markdown_is_a_valid_github_table(tmp_path: Path) -> None:
    fake_run(tmp_path, dataset="odd|name", loss="ce", memory_mib=9.1 * 1024)
    fake_run(tmp_path, loss="cce", metrics={"full": {"NDCG@10": 0.1234, "HR@10": 0.5,
                                                      "Coverage@10": 0.7,
                                                      "Surprisal@10": 0.6}})
    text = run_compare(runs_dir=tmp_path, output_format="markdown", baseline="ce")
    rows = markdown_rows(text)
    header, separator, body = rows[0], rows[1], rows[2:]
    assert all(re.fullmatch(r"-{3}:?", cell) for cell in separator)
    assert {len(row) for row in rows} == {len(header)}
    assert len(body) == 2
    column = {name: i for i, name in enumerate(header)}
    assert {"dataset", "loss", "protocol", "NDCG@10", "peak memory", "epoch s", "status",
            "seed"} <= set(column)
    cce = next(row for row in body if row[column["loss"]] == "cce[cuda-kernel]")
    assert cce[column["NDCG@10"]] == "0.1234"
    assert cce[column["protocol"]] == "full"
    odd = next(row for row in body if row[column["loss"]] == "ce[torch]")
    assert odd[column["dataset"]] == "odd\\|name"  # escaped, so the row keeps its columns
    assert odd[column["peak memory"]] == "9.10 GiB (cuda-allocated)"
    assert "[" in text and "\x1b" not in text  # plain text: no markup, no colour codes


def test_csv_round_trips_through_dictreader(tmp_path: Path) -> None:
    fake_run(tmp_path, loss="ce", seed=1, memory_mib=200)
    fake_run(tmp_path, loss="cce", seed=2, status="failed")
    text = run_compare(runs_dir=tmp_path, output_format="csv")
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == 2
    by_loss = {record["loss"]: record for record in records}
    assert float(by_loss["ce"]["NDCG@10"]) == pytest.approx(0.1)
    assert int(by_loss["ce"]["peak_memory_bytes"]) == 200 * MIB
    assert by_loss["ce"]["memory_kind"] == "cuda-allocated"
    assert by_loss["cce"]["status"] == "failed" and by_loss["cce"]["NDCG@10"] == ""


def test_json_keeps_numbers_as_numbers(tmp_path: Path) -> None:
    fake_run(tmp_path, loss="ce", memory_mib=300, epoch_seconds=1.5, epochs=4, parameters=877888)
    (record,) = json_rows(tmp_path)
    assert isinstance(record["NDCG@10"], float) and record["NDCG@10"] == 0.1
    assert record["peak_memory_bytes"] == 300 * MIB and isinstance(record["peak_memory_bytes"],
                                                                    int)
    assert record["epochs"] == 4 and record["parameters"] == 877888
    assert record["mean_epoch_seconds"] == 1.5
    assert record["loss_backend"] == "ce[torch]" and record["status"] == "finished"
    assert record["Coverage@10"] is None  # not recorded by this run: null, not "-"


def test_unknown_format_is_an_error(tmp_path: Path, cli: Cli) -> None:
    fake_run(tmp_path)
    result = cli("compare", "--runs-dir", str(tmp_path), "--format", "xlsx")
    assert result.code == 1 and "xlsx" in result.err and "markdown" in result.err


def test_cli_json_output_is_parseable(tmp_path: Path, cli: Cli) -> None:
    fake_run(tmp_path, loss="ce")
    fake_run(tmp_path, loss="cce")
    result = cli("compare", "--runs-dir", str(tmp_path), "--format", "json", "--baseline", "ce")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [row["loss"] for row in rows] == ["cce", "ce"]


# --- what is (and is not) a run ----------------------------------------------------------------


def test_torn_last_line_is_ignored_and_the_run_listed(tmp_path: Path) -> None:
    fake_run(tmp_path, status="running", epochs=2, torn_tail=True, memory_mib=123)
    (record,) = json_rows(tmp_path)
    assert record["status"] == "running"
    assert record["epochs"] == 2  # the half-written third epoch is not counted
    assert record["peak_memory_bytes"] == 123 * MIB  # from the epoch events: no summary yet
    assert record["NDCG@10"] is None


def test_failed_and_running_runs_are_shown_with_their_status(tmp_path: Path) -> None:
    fake_run(tmp_path, loss="ce")
    fake_run(tmp_path, loss="cce", status="failed", epochs=2, memory_mib=77)
    fake_run(tmp_path, loss="bce", status="running", epochs=1)
    table = run_compare(runs_dir=tmp_path)
    lines = {status: next(line for line in table.splitlines() if f" {status} " in line)
             for status in ("finished", "failed", "running")}
    assert "cce[cuda-kernel]" in lines["failed"] and "77.00 MiB" in lines["failed"]
    assert "bce[x]" in lines["running"]

    header, _, *body = markdown_rows(run_compare(runs_dir=tmp_path, output_format="markdown"))
    column = {name: i for i, name in enumerate(header)}
    by_status = {row[column["status"]]: row for row in body}
    assert set(by_status) == {"finished", "failed", "running"}
    for status in ("failed", "running"):  # what they lack reads "-"; what they have is shown
        assert by_status[status][column["NDCG@10"]] == "-"
        assert by_status[status][column["protocol"]] == "-"
    assert by_status["finished"][column["NDCG@10"]] == "0.1000"
    assert by_status["failed"][column["epochs"]] == "2"
    rows = {row["loss"]: row for row in json_rows(tmp_path)}
    assert rows["cce"]["epochs"] == 2 and rows["cce"]["NDCG@10"] is None


def test_pretrain_runs_are_listed_unless_the_loss_filter_excludes_them(tmp_path: Path) -> None:
    fake_run(tmp_path, loss="ce")
    fake_run(tmp_path, pretrain_rank=16, dataset="beauty")
    rows = {row["model"]: row for row in json_rows(tmp_path)}
    pre = rows["s3rec-pretrain"]
    assert pre["status"] == "finished" and pre["NDCG@10"] is None and pre["variant"] == "r16"
    assert [row["model"] for row in json_rows(tmp_path, losses=["ce"])] == ["sasrec"]
    assert [row["model"] for row in json_rows(tmp_path, losses=["pretrain"])] == [
        "s3rec-pretrain"]


def test_variants_come_from_the_config_also_while_running_or_from_older_records(
        tmp_path: Path) -> None:
    """A pretraining still being written (no summary yet) is named from its config, low-rank
    heads included; a fine-tune recorded before `pretrain_variant` existed falls back to its
    rank; a newer one carries the pretraining's variant."""
    running = fake_run(tmp_path, pretrain_rank=16, status="running", dataset="a")
    config = json.loads((running / "config.json").read_text())
    config["resolved"]["lowrank_heads"] = ["aap"]
    (running / "config.json").write_text(json.dumps(config))
    fake_run(tmp_path, model="s3rec", loss="bce", dataset="b",
             finetune={"init_from": "x/epoch-9.pt", "pretrain_rank": 16, "pretrain_epoch": 9})
    fake_run(tmp_path, model="s3rec", loss="bce", dataset="c",
             finetune={"init_from": "y/epoch-9.pt", "pretrain_rank": 8, "pretrain_epoch": 9,
                       "pretrain_variant": "r8-all"})
    variants = {row["dataset"]: row["variant"] for row in json_rows(tmp_path)}
    assert variants == {"a": "r16-aap", "b": "r16", "c": "r8-all"}


def test_non_run_directory_is_reported_once_and_skipped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake_run(tmp_path, loss="ce")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not a run")
    (tmp_path / "README.md").write_text("a file, not a directory")
    caplog.set_level(logging.WARNING)
    rows = json_rows(tmp_path)
    assert len(rows) == 1
    about_notes = [r for r in caplog.records if "notes" in r.getMessage()]
    assert len(about_notes) == 1 and about_notes[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if "README" in r.getMessage()]
    assert len([r for r in caplog.records if "not a run" in r.getMessage()]) == 1  # the run: no


def test_no_runs_gives_a_friendly_message(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "empty").mkdir()  # a directory that does not exist is an error (below)
    result = cli("compare", "--runs-dir", str(tmp_path / "empty"))
    assert result.code == 0
    assert "seqbench bench" in result.out
    json_result = cli("compare", "--runs-dir", str(tmp_path / "empty"), "--format", "json")
    assert json_result.code == 0 and json.loads(json_result.out) == []


def test_missing_runs_dir_is_an_error_naming_it(tmp_path: Path, cli: Cli) -> None:
    """A mistyped --runs-dir must not read as "no runs yet" (exit 0), in any format."""
    missing = tmp_path / "does" / "not" / "exist"
    for extra in ([], ["--format", "json"]):
        result = cli("compare", "--runs-dir", str(missing), *extra)
        assert result.code == 1
        assert result.out == ""
        assert result.err.strip() == f"error: runs directory {missing} does not exist"
    assert not missing.exists()  # and compare did not create it


# --- selecting runs ----------------------------------------------------------------------------


def test_filters_and_last(tmp_path: Path) -> None:
    fake_run(tmp_path, dataset="beauty", loss="ce", seed=0)
    fake_run(tmp_path, dataset="beauty", loss="cce", seed=1)
    fake_run(tmp_path, dataset="ml-1m", loss="ce", seed=2)
    fake_run(tmp_path, dataset="beauty", loss="ce", seed=3)

    assert {row["dataset"] for row in json_rows(tmp_path, datasets=["ml-1m"])} == {"ml-1m"}
    assert sorted(row["seed"] for row in json_rows(tmp_path, losses=["ce"])) == [0, 2, 3]
    assert sorted(row["seed"] for row in json_rows(tmp_path, last=2)) == [2, 3]
    # --last counts after the filters: the two most recent *beauty ce* runs
    assert sorted(row["seed"] for row in json_rows(tmp_path, datasets=["beauty"],
                                                   losses=["ce"], last=2)) == [0, 3]
    assert "No runs match" in run_compare(runs_dir=tmp_path, datasets=["netflix"])


def test_explicit_run_arguments(tmp_path: Path, cli: Cli) -> None:
    first = fake_run(tmp_path / "a", loss="ce", seed=7)
    fake_run(tmp_path / "a", loss="cce", seed=8)
    other = fake_run(tmp_path / "b", loss="bce", seed=9)
    result = cli("compare", str(first), str(other), "--format", "json")
    assert result.code == 0, result.err
    assert sorted(row["seed"] for row in json.loads(result.out)) == [7, 9]

    bad = cli("compare", str(first), str(tmp_path / "b"))
    assert bad.code == 1 and str(tmp_path / "b") in bad.err and "not a run" in bad.err


def test_unknown_metric_names_the_available_ones(tmp_path: Path, cli: Cli) -> None:
    fake_run(tmp_path, metrics={"full": {"NDCG@10": 0.1, "HR@10": 0.2}})
    result = cli("compare", "--runs-dir", str(tmp_path), "--metrics", "NDCG@10,nDCG@100")
    assert result.code == 1
    assert "nDCG@100" in result.err and "HR@10" in result.err and "NDCG@10" in result.err
    with pytest.raises(SeqbenchError, match="sampled-99"):
        run_compare(runs_dir=tmp_path, protocols=["sampled-999"])


# --- the Rich table ----------------------------------------------------------------------------


def test_table_shows_backends_literally_and_never_cuts_numbers(tmp_path: Path) -> None:
    fake_run(tmp_path, loss="ce", memory_mib=1000, metrics={
        "full": {"HR@10": 0.1111, "NDCG@10": 0.2222, "Coverage@10": 0.3333,
                 "Surprisal@10": 0.4444}})
    fake_run(tmp_path, loss="cce", memory_mib=650)
    wide = run_compare(runs_dir=tmp_path, baseline="ce")
    assert "ce[torch]" in wide and "cce[cuda-kernel]" in wide  # not eaten as markup
    assert "1000.00 MiB (cuda-allocated)" in wide

    narrow = run_compare(runs_dir=tmp_path, baseline="ce", width=100)
    assert all(len(line) <= 100 for line in narrow.splitlines())
    assert "…" not in narrow
    for value in ("0.1111", "0.2222", "0.3333", "0.4444", "-35.0%", "650.00 MiB"):
        assert value in narrow


# --- charts ------------------------------------------------------------------------------------


def test_plot_writes_pngs_including_an_s3rec_rank_sweep(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for loss, memory in (("ce", 1000), ("cce", 650)):
        for seed in range(2):
            fake_run(runs, dataset="beauty", loss=loss, seed=seed, memory_mib=memory,
                     metrics={"full": {"NDCG@10": 0.05 + seed / 100}})
    both = {"full": {"NDCG@10": 0.03}, "sampled-99": {"NDCG@10": 0.3}}
    for rank in (4, 8, 0):
        pre = fake_run(runs, dataset="beauty", pretrain_rank=rank)
        fake_run(runs, dataset="beauty", loss="bce", model="s3rec", metrics=both,
                 finetune={"init_from": str(pre / "epoch-1.pt"),
                           "pretrain_rank": rank or None, "pretrain_epoch": 1})
    plots = tmp_path / "charts"
    out = run_compare(runs_dir=runs, plot_dir=plots)

    expected = {"training_curves.png", "memory_time.png", "s3rec_rank_sweep.png"}
    assert {p.name for p in plots.iterdir()} == expected  # and no temporary files left
    for name in expected:
        data = (plots / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
        assert name in out  # the list of files written


def test_plot_without_a_sweep_skips_that_chart(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    fake_run(tmp_path / "runs", loss="ce")
    caplog.set_level(logging.INFO)
    run_compare(runs_dir=tmp_path / "runs", plot_dir=tmp_path / "charts")
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == [
        "memory_time.png", "training_curves.png"]
    assert any("no S3Rec rank sweep" in r.getMessage() for r in caplog.records)


def test_plot_without_matplotlib_fails_before_printing_anything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    """Not a whole table and then the error: the check comes before any run is read."""
    fake_run(tmp_path / "runs")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    buffer = io.StringIO()
    with pytest.raises(SeqbenchError) as raised:
        compare_command(CompareOptions(runs_dir=tmp_path / "runs", plot_dir=tmp_path / "charts"),
                        Console(file=buffer, width=200, color_system=None))
    assert str(raised.value) == "--plot needs matplotlib: pip install 'seqbench[plot]'"
    assert buffer.getvalue() == ""
    assert not (tmp_path / "charts").exists()

    result = cli("compare", "--runs-dir", str(tmp_path / "runs"), "--plot",
                 str(tmp_path / "charts"))
    assert result.code == 1 and result.out == ""
    assert result.err.splitlines() == ["error: --plot needs matplotlib: pip install "
                                       "'seqbench[plot]'"]


def test_plot_without_matplotlib_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_run(tmp_path / "runs")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(SeqbenchError, match=r"pip install 'seqbench\[plot\]'"):
        run_compare(runs_dir=tmp_path / "runs", plot_dir=tmp_path / "charts")


def _chart_runs(runs_dir: Path) -> list[Any]:
    """The runs compare would chart from `runs_dir` (RunFacts)."""
    from seqbench.report.compare import select_runs

    facts, _ = select_runs(CompareOptions(runs_dir=runs_dir))
    return facts


def _line_colors(figure: Any) -> dict[str, str]:
    """Legend label -> hex colour of every curve in `figure`."""
    from matplotlib.colors import to_hex

    return {line.get_label(): to_hex(line.get_color()) for ax in figure.axes
            for line in ax.get_lines() if not line.get_label().startswith("_")}


def _bar_colors(figure: Any) -> dict[str, str]:
    """Legend label -> hex face colour of every bar series in `figure`."""
    from matplotlib.colors import to_hex

    return {bars.get_label(): to_hex(bars.patches[0].get_facecolor()) for ax in figure.axes
            for bars in ax.containers if not bars.get_label().startswith("_")}


def test_a_loss_has_one_colour_in_every_chart_and_every_call(tmp_path: Path) -> None:
    """Colours used to go by position: cce was orange next to ce and blue on its own."""
    from seqbench.report.plots import LOSS_COLORS, draw_charts

    both, alone = tmp_path / "both", tmp_path / "alone"
    for runs_dir, losses in ((both, ("ce", "cce")), (alone, ("cce",))):
        for loss in losses:
            fake_run(runs_dir, loss=loss, memory_mib=1000 if loss == "ce" else 650)
    charts = draw_charts(_chart_runs(both))
    curves = _line_colors(charts["training_curves.png"])
    bars = _bar_colors(charts["memory_time.png"])
    assert curves == {"beauty ce s0": LOSS_COLORS["ce"], "beauty cce s0": LOSS_COLORS["cce"]}
    assert bars == {"ce[torch]": LOSS_COLORS["ce"], "cce[cuda-kernel]": LOSS_COLORS["cce"]}
    assert LOSS_COLORS["ce"] != LOSS_COLORS["cce"]

    charts_alone = draw_charts(_chart_runs(alone))  # another call, another set of runs
    assert _line_colors(charts_alone["training_curves.png"]) == {
        "beauty cce s0": LOSS_COLORS["cce"]}
    assert _bar_colors(charts_alone["memory_time.png"]) == {
        "cce[cuda-kernel]": LOSS_COLORS["cce"]}


def test_coinciding_curves_differ_in_line_style_and_marker(tmp_path: Path) -> None:
    """ce and cce on the CPU train to the same loss: neither curve may hide the other."""
    from seqbench.report.plots import draw_charts

    for loss in ("ce", "cce"):
        for seed in range(2):
            fake_run(tmp_path, loss=loss, seed=seed)  # every run: the same curves
    figure = draw_charts(_chart_runs(tmp_path))["training_curves.png"]
    quality, loss_axes = figure.axes[:2]
    for ax in (quality, loss_axes):
        lines = ax.get_lines()
        assert len(lines) == 4
        assert len({line.get_ydata().tobytes() for line in lines}) == 1  # they do coincide
        assert len({(line.get_linestyle(), line.get_marker()) for line in lines}) == 4
        assert len({line.get_marker() for line in lines}) == 4
        assert all(line.get_markerfacecolor() == "none" for line in lines)  # hollow: nested
    # a run looks the same in both panels, so the one legend serves both
    assert [(line.get_label(), line.get_linestyle(), line.get_marker())
            for line in quality.get_lines()] == [
        (line.get_label(), line.get_linestyle(), line.get_marker())
        for line in loss_axes.get_lines()]


def test_bars_of_one_loss_differ_in_hatch(tmp_path: Path) -> None:
    """Two cce backends share cce's colour; the hatch tells their bars apart."""
    from seqbench.report.plots import LOSS_COLORS, draw_charts

    fake_run(tmp_path, loss="cce", backend="cce[cuda-kernel]")
    fake_run(tmp_path, loss="cce", backend="cce[cpu-blockwise]")
    figure = draw_charts(_chart_runs(tmp_path))["memory_time.png"]
    assert set(_bar_colors(figure).values()) == {LOSS_COLORS["cce"]}
    memory_axes = figure.axes[0]
    hatches = {bars.get_label(): bars.patches[0].get_hatch() for bars in memory_axes.containers}
    assert len(hatches) == 2 and len(set(hatches.values())) == 2


def test_loss_colours_for_unknown_losses_and_s3rec_variants_are_stable() -> None:
    """Another loss gets a hue from its name, the same in every process; a low-rank S3Rec
    variant a lighter shade of its loss's colour."""
    import subprocess

    from seqbench.report.plots import FALLBACK_COLORS, LOSS_COLORS, loss_color

    assert loss_color("cce[cuda-kernel]") == loss_color("cce") == LOSS_COLORS["cce"]
    focal = loss_color("focal")
    assert focal in FALLBACK_COLORS and focal not in LOSS_COLORS.values()
    assert loss_color("focal[x]") == focal
    elsewhere = subprocess.run(
        [sys.executable, "-c", "from seqbench.report.plots import loss_color; "
         "print(loss_color('focal'))"], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)})
    assert elsewhere.stdout.strip() == focal  # not Python's per-process string hash

    assert loss_color("bce", "full") == loss_color("bce") == LOSS_COLORS["bce"]
    shades = [loss_color("bce", variant) for variant in ("r4", "r16", "r16-aap")]
    assert shades[0] != shades[1] and shades[1] == shades[2]  # the rank sets the shade
    assert all(shade != LOSS_COLORS["bce"] for shade in shades)
