"""A finished run, loaded to recommend: `seqbench.load(run_dir)` (docs/api.md).

Everything comes from the run directory alone (docs/runs.md): the weights from best.pt (read
with `weights_only`, so loading never executes code), the model shape from the checkpoint, the
original ids and the interactions from `<run>/dataset/`. Ranking is the evaluator's own code
(`engine.evaluate.embed` and `rank_full`): the same exclusion of seen items, the same tie
break by item id, the same item blocks, so a 1,000,000-item catalogue never needs a
users x items score matrix, and `--history test` reproduces the recorded test metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from seqbench.config import RunConfig, config_from_record
from seqbench.data.dataset import Dataset
from seqbench.engine.batches import HoldoutData
from seqbench.engine.encoder import EncoderShape
from seqbench.engine.evaluate import Ranking, embed, rank_full
from seqbench.engine.sasrec import SASRec
from seqbench.errors import SeqbenchError
from seqbench.recipes.checkpoints import resolve_checkpoint
from seqbench.recipes.context import resolve_device
from seqbench.runs.checkpoint import load_checkpoint
from seqbench.runs.portable import run_dataset_dir
from seqbench.runs.read import read_run
from seqbench.runs.schema import ModelKind

log = logging.getLogger(__name__)

HISTORIES = ("all", "test")  # what `recommend_users` ranks from: every interaction, or test inputs
BEST_CHECKPOINT = "best.pt"  # the weights the run was tested with
Progress = Callable[[int], None]  # called with the number of users just ranked


@dataclass
class Recommendation:
    """One history's top-k: original item ids, best first, and their scores."""

    items: list[Any]
    scores: list[float]


class Recommender:
    """A trained SASRec (or fine-tuned S3Rec) run that recommends in the dataset's original ids.

    Histories are sequences of original item ids, oldest first; items the run's dataset does
    not know are skipped (and counted in one warning). Scores are float32 dot products of the
    user's vector with the item's row of the tied item table; higher is better.
    """

    def __init__(self, *, path: Path, config: RunConfig, model: SASRec, dataset: Dataset,
                 device: torch.device, checkpoint: Path) -> None:
        self.path = path
        self.config = config
        self.model = model
        self.dataset = dataset
        self.device = device
        self.checkpoint = checkpoint
        self._items = dataset.item_table()
        self._users = dataset.user_table()

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def shape(self) -> EncoderShape:
        return self.model.shape

    @property
    def num_items(self) -> int:
        return self.dataset.num_items

    @property
    def item_ids(self) -> list[Any]:
        """Original item ids in table order: row i of `item_embeddings()` is `item_ids[i]`."""
        return self._items["original"].to_list()

    @property
    def user_ids(self) -> list[Any]:
        """Original ids of the dataset's users, in the dataset's order."""
        return self._users["original"].to_list()

    # --- the public calls -------------------------------------------------------------------

    def recommend(self, histories: Sequence[Sequence[Any]], k: int = 10,
                  exclude_seen: bool = True) -> list[Recommendation]:
        """The top-k items for each history (seen items excluded unless asked not to)."""
        self.check_k(k)
        data, items, _ = self._histories(histories)
        ranking = self._rank(data, items, k=k, exclude_seen=exclude_seen)
        original = self._items["original"].to_numpy()
        out = []
        for ids, scores in zip(ranking.top, ranking.scores, strict=True):  # type: ignore[arg-type]
            keep = ids > 0
            out.append(Recommendation(items=original[ids[keep] - 1].tolist(),
                                      scores=scores[keep].astype(float).tolist()))
        return out

    def score(self, histories: Sequence[Sequence[Any]], items: Sequence[Any]) -> np.ndarray:
        """Scores [len(histories), len(items)] of the given original item ids (all known)."""
        ids = self._internal(_series(list(items)))
        missing = [item for item, i in zip(items, ids, strict=True) if i == 0]
        if missing:
            raise SeqbenchError(f"item {missing[0]!r} is not in the run's dataset "
                                f"({len(missing)} unknown of {len(ids)})")
        users = self.user_vectors(histories)
        table = self.model.item_table().detach().float()[torch.from_numpy(ids - 1)]
        return (torch.from_numpy(users) @ table.cpu().T).numpy()

    def user_vectors(self, histories: Sequence[Sequence[Any]]) -> np.ndarray:
        """[len(histories), dim]: the encoder's state after each history's last item."""
        data, _, _ = self._histories(histories)
        return self._embed(data).users.cpu().numpy()

    def item_embeddings(self) -> np.ndarray:
        """[num_items, dim] float32, the tied item table (row i is `item_ids[i]`)."""
        return self.model.item_table().detach().float().cpu().numpy().copy()

    def recommend_users(self, users: Sequence[Any] | None = None, *, k: int = 10,
                        history: str = "all", exclude_seen: bool = True,
                        progress: Progress | None = None) -> pl.DataFrame:
        """Columns user, rank, item, score for the dataset's users (all, or `users`, given by
        original id). `history="all"` ranks from every known interaction (production);
        `"test"` from the test inputs of the run's split, exactly as the evaluator ranked them
        (held-out targets stay candidates even if the user had them before)."""
        self.check_k(k)
        if history not in HISTORIES:
            raise SeqbenchError(f"history must be one of {', '.join(HISTORIES)}, got {history!r}")
        rows = None if users is None else self.user_rows(users)
        if history == "test":
            data = HoldoutData.build(self.dataset, "test", self.shape.max_len)
            if rows is not None:
                data = _select(data, np.flatnonzero(np.isin(data.users, rows)))
                if len(data) < len(rows):
                    log.warning("%d of the %d users have no test target (%s split) and are "
                                "left out", len(rows) - len(data), len(rows),
                                self.dataset.split)
        else:
            chosen = np.arange(self.dataset.num_users) if rows is None else rows
            offsets = self.dataset.offsets
            data = HoldoutData.from_histories(self.dataset.items, offsets[:-1][chosen],
                                              offsets[1:][chosen], self.shape.max_len)
            data.users = chosen
        ranking = self._rank(data, self.dataset.items, k=k, exclude_seen=exclude_seen,
                             progress=progress)
        return self._frame(self._users["original"].gather(data.users), ranking)

    def recommend_frame(self, histories: pl.DataFrame, *, k: int = 10,
                        exclude_seen: bool = True, progress: Progress | None = None
                        ) -> pl.DataFrame:
        """Like `recommend_users` for new histories: a frame of (user, item) rows, each user's
        items oldest first; users appear in the output in their first row's order."""
        self.check_k(k)
        labels, data, items = self._frame_histories(histories)
        ranking = self._rank(data, items, k=k, exclude_seen=exclude_seen, progress=progress)
        return self._frame(labels, ranking)

    def user_rows(self, users: Sequence[Any]) -> np.ndarray:
        """Dataset rows of original user ids; an unknown id is an error naming it."""
        found = _positions(self._users["original"], pl.Series([str(u) for u in users]))
        if (found < 0).any():
            first = users[int(np.flatnonzero(found < 0)[0])]
            raise SeqbenchError(f"user {first!r} is not in the run's dataset "
                                f"({self.dataset.name}, {self.dataset.num_users:,} users)")
        return found

    def sample_histories(self, n: int = 100) -> np.ndarray:
        """[n, max_len] int64 left-padded internal-id histories: the first n test inputs."""
        data = HoldoutData.build(self.dataset, "test", self.shape.max_len)
        return data.inputs[:n]

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.num_items:
            raise SeqbenchError(f"k (--k) must be between 1 and the catalogue's {self.num_items:,} "
                                f"items, got {k}")

    # --- internals ----------------------------------------------------------------------------

    def _embed(self, data: HoldoutData) -> Any:
        return embed(self.model, data, device=self.device,
                     batch_size=self.config.eval.eval_batch_size)

    @torch.no_grad()
    def _rank(self, data: HoldoutData, items: np.ndarray, *, k: int, exclude_seen: bool,
              progress: Progress | None = None) -> Ranking:
        """The evaluator's ranking (same batches, blocks and tie break)."""
        embedded = self._embed(data)
        return rank_full(embedded, data, items, k=k, device=self.device,
                         exclude_seen=exclude_seen, batch_size=self.config.eval.eval_batch_size,
                         on_batch=progress)

    def _frame(self, users: pl.Series, ranking: Ranking) -> pl.DataFrame:
        top, scores = ranking.top, ranking.scores
        assert scores is not None
        k = top.shape[1]
        keep = (top > 0).ravel()
        original = self._items["original"]
        ids = pl.Series("id", top.ravel()[keep] - 1)
        return pl.DataFrame({
            "user": pl.Series("user", users).gather(np.repeat(np.arange(len(users)), k)[keep]),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(users))[keep],
            "item": original.gather(ids),
            "score": scores.ravel()[keep],
        })

    def _internal(self, values: pl.Series) -> np.ndarray:
        """Internal ids (1..I) of original item ids; 0 for unknown ones."""
        return _positions(self._items["original"], values) + 1

    def _histories(self, histories: Sequence[Sequence[Any]]
                   ) -> tuple[HoldoutData, np.ndarray, pl.Series]:
        lengths = [len(h) for h in histories]
        frame = pl.DataFrame({
            "user": np.repeat(np.arange(len(histories)), lengths),
            "item": _series([item for h in histories for item in h]),
        })
        labels, data, items = self._frame_histories(frame, keep_empty=True)
        return data, items, labels

    def _frame_histories(self, frame: pl.DataFrame, *, keep_empty: bool = False
                         ) -> tuple[pl.Series, HoldoutData, np.ndarray]:
        """(user labels, histories as HoldoutData, their concatenated internal ids)."""
        labels = frame["user"].unique(maintain_order=True)
        position = pl.DataFrame({"user": labels}).with_row_index("position")
        ids = self._internal(frame["item"]) if len(frame) else np.zeros(0, np.int64)
        known = ids > 0
        if (~known).any():
            log.warning("%d of %d history items are not in the run's dataset and were skipped",
                        int((~known).sum()), len(ids))
        rows = (frame.select("user").join(position, on="user", how="left",
                                          maintain_order="left")["position"].to_numpy())
        rows, ids = rows[known], ids[known]
        order = np.argsort(rows, kind="stable")  # each user's items keep their order
        rows, ids = rows[order], ids[order]
        lengths = np.bincount(rows, minlength=len(labels))
        empty = lengths == 0
        if empty.any() and not keep_empty:
            log.warning("%d histories have no item the run knows and were left out",
                        int(empty.sum()))
            labels = labels.filter(pl.Series(~empty))
            lengths = lengths[~empty]
        ends = np.cumsum(lengths)
        return labels, HoldoutData.from_histories(ids, ends - lengths, ends,
                                                  self.shape.max_len), ids


def load(run_dir: str | Path, *, device: str = "cpu") -> Recommender:
    """The finished `bench`/`finetune` run in `run_dir`, ready to recommend.

    Refuses, with the reason, what cannot recommend: a directory that is no run, a run still
    being written, failed or interrupted, a pretraining run (fine-tune it first), a run whose
    weights or dataset do not match each other."""
    path = Path(run_dir)
    view = read_run(path)
    if view is None:
        raise SeqbenchError(f"{path}: not a seqbench run directory (no readable config.json)")
    kind = view.resolved.kind
    if kind is ModelKind.S3REC_PRETRAIN:
        raise SeqbenchError(f"{path}: a pretraining run cannot recommend (it learnt no next "
                            f"item); fine-tune it first: seqbench finetune --init-from {path}")
    if view.status != "finished":
        why = {"running": "is still being written", "failed": "failed",
               "interrupted": "was interrupted"}.get(view.status, "did not finish")
        raise SeqbenchError(f"{path}: the run {why} (status {view.status}); only a finished run "
                            f"has tested weights to recommend with")
    config = config_from_record(view.config, where=str(path / "config.json"))
    dataset = Dataset.load(run_dataset_dir(path, view.config))
    checkpoint = path / BEST_CHECKPOINT
    if not checkpoint.exists():  # a run without validation keeps its last epoch-N.pt
        if not any(path.glob("epoch-*.pt")):
            raise SeqbenchError(f"{path}: no {BEST_CHECKPOINT} (the weights it was tested "
                                f"with); was it copied without its checkpoints?")
        checkpoint = resolve_checkpoint(path)
    state = load_checkpoint(checkpoint)
    if state.get("dataset_key") != dataset.meta.get("key"):
        raise SeqbenchError(f"{checkpoint}: trained on dataset cache {state.get('dataset_key')}, "
                            f"but the run's dataset is {dataset.meta.get('key')}")
    shape = EncoderShape(**state["shape"])
    if shape.num_items != dataset.num_items:
        raise SeqbenchError(f"{checkpoint}: a model of {shape.num_items:,} items for a dataset "
                            f"of {dataset.num_items:,}")
    target = resolve_device(device)
    model = SASRec(shape)
    model.load_state_dict(state["model"])
    model.to(target).eval()
    return Recommender(path=path, config=config, model=model, dataset=dataset, device=target,
                       checkpoint=checkpoint)


def _positions(original: pl.Series, values: pl.Series) -> np.ndarray:
    """Each value's position in `original` (-1 where it is not there), matched after a cast
    to `original`'s type (ids given as text match integer ids)."""
    if values.dtype != original.dtype:
        values = values.cast(pl.String).cast(original.dtype, strict=False)
    index = pl.DataFrame({"original": original}).with_row_index("position")
    found = pl.DataFrame({"original": values}).join(index, on="original", how="left",
                                                    maintain_order="left")["position"]
    return found.cast(pl.Int64).fill_null(-1).to_numpy()


def _series(values: list[Any]) -> pl.Series:
    """Item ids as given; mixed types (`[12, "x"]`) as text, matched after a cast."""
    try:
        return pl.Series("item", values)
    except (TypeError, pl.exceptions.PolarsError):
        return pl.Series("item", [str(v) for v in values], dtype=pl.String)


def _select(data: HoldoutData, rows: np.ndarray) -> HoldoutData:
    def some(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else array[rows]

    return HoldoutData(users=data.users[rows], inputs=data.inputs[rows],
                       targets=some(data.targets), history_starts=data.history_starts[rows],
                       history_ends=data.history_ends[rows],
                       target_starts=some(data.target_starts),
                       target_ends=some(data.target_ends))
