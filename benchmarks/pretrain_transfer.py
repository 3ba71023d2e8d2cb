"""Does S3Rec pretraining help fine-tuning on `synthetic`, and for how long? (issue 4, measured)

For each number of pretraining epochs, pretrains (all four tasks unless `--tasks` says
otherwise), fine-tunes with `bce` for `--finetune-epochs`, and fine-tunes the same SASRec from
scratch. Prints test NDCG@10 (full ranking and sampled-99) of both, the last fine-tuning train
loss, and two diagnostics of the pretrained encoder read under causal attention, as
fine-tuning sees it:

* state cosine: mean cosine between the last hidden states of different training users. Near 1
  means the states have collapsed to one vector (the encoder predicts the same thing for
  everyone, e.g. popularity);
* blocks / embedding: RMS of what the Transformer blocks add to the residual stream over the
  RMS of the input embeddings. Large values mean the current item's identity is drowned.

    python benchmarks/pretrain_transfer.py [--pretrain-epochs 1,4,30] [--finetune-epochs 2]
        [--items 300 --users 900 --mean-len 12] [--seed 0] [--tasks aap,mip,map,sp]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from seqbench.config import load_config
from seqbench.engine.encoder import attention_mask
from seqbench.engine.s3rec import TASKS
from seqbench.engine.sasrec import SASRec
from seqbench.recipes import (
    encoder_shape,
    finetune,
    load_pretrained_encoder,
    prepare_context,
    pretrain,
)
from seqbench.runs.read import read_events_since


def make_config(work: Path, args: argparse.Namespace, pretrain_epochs: int) -> Any:
    weights = {t: (w if t in args.tasks else 0.0) for t, w in
               {"aap": 0.2, "mip": 1.0, "map": 1.0, "sp": 0.5}.items()}
    return load_config(None, {
        "data": {"dataset": "synthetic", "items": args.items, "users": args.users,
                 "mean_len": args.mean_len, "data_seed": args.seed,
                 "data_dir": str(work / "cache")},
        "model": {"dim": 32, "layers": 1, "heads": 1, "dropout": 0.2, "max_len": 20},
        "train": {"seed": args.seed, "epochs": args.finetune_epochs,
                  "patience": args.finetune_epochs, "batch_size": 128, "lr": args.lr,
                  "runs_dir": str(work / "runs")},
        "eval": {"k": [10], "protocol": ["full", "sampled-99"]},
        "pretrain": {"epochs": pretrain_epochs, "batch_size": 256, "lr": args.pretrain_lr,
                     "checkpoint_every": pretrain_epochs,
                     **{f"{task}_weight": weight for task, weight in weights.items()}},
        "finetune": {"loss": args.loss},
    })


@torch.no_grad()
def diagnostics(model: SASRec, sequences: torch.Tensor) -> tuple[float, float]:
    """(mean pairwise cosine of last states, RMS added by the blocks / RMS of embeddings)."""
    model.eval()
    encoder = model.encoder
    keep = (sequences != 0).unsqueeze(-1)
    length = sequences.shape[1]
    positions = torch.arange(encoder.shape.max_len - length, encoder.shape.max_len)
    x = (encoder.item_emb(sequences) + encoder.pos_emb(positions)) * keep
    embedded = x
    allowed = attention_mask(sequences, causal=True)
    for block in encoder.blocks:
        x = block(x, allowed) * keep
    last = F.normalize(encoder.norm(x)[:, -1], dim=-1)
    cosine = last @ last.T
    off_diagonal = cosine[~torch.eye(len(last), dtype=torch.bool)].mean().item()
    mask = keep.expand_as(x)
    ratio = (x - embedded)[mask].pow(2).mean().sqrt() / embedded[mask].pow(2).mean().sqrt()
    return off_diagonal, ratio.item()


def last_training_windows(dataset: Any, users: int, length: int) -> torch.Tensor:
    """Right-aligned last `length` training items of the first `users` users."""
    rows = []
    for user in range(min(users, dataset.num_users)):
        start, end = dataset.offsets[user], dataset.offsets[user + 1]
        items = torch.as_tensor(dataset.items[start:end - 2][-length:], dtype=torch.long)
        rows.append(F.pad(items, (length - len(items), 0)))
    return torch.stack(rows)


def last_train_loss(summary: dict[str, Any]) -> float:
    events, _ = read_events_since(Path(summary["path"]), 0)
    return float([e for e in events if e["event"] == "epoch"][-1]["train_loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-epochs", default="1,4,30")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3, help="fine-tuning (both arms)")
    parser.add_argument("--pretrain-lr", type=float, default=3e-3)
    parser.add_argument("--loss", default="bce", help="fine-tuning loss (both arms)")
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--users", type=int, default=900)
    parser.add_argument("--mean-len", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument("--tasks", default=",".join(TASKS),
                        type=lambda text: [t.strip() for t in text.split(",") if t.strip()])
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    table = Table(title=f"synthetic ({args.items} items, {args.users} users), pretraining "
                        f"{'+'.join(t.upper() for t in args.tasks)}, then {args.finetune_epochs}"
                        f" fine-tuning epochs with {args.loss} at lr {args.lr:g}; test NDCG@10")
    for column in ("pretrain epochs", "state cosine", "blocks / embedding",
                   "train loss (pre / scratch)", "full (pre / scratch)",
                   "sampled-99 (pre / scratch)"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scratch: dict[str, Any] | None = None
        config = make_config(work, args, 1)
        context = prepare_context(config)
        shape = encoder_shape(config, context.dataset.num_items)
        windows = last_training_windows(context.dataset, 300, shape.max_len)
        torch.manual_seed(config.train.seed)
        cosine, ratio = diagnostics(SASRec(shape), windows)
        table.add_row("none (random init)", f"{cosine:.3f}", f"{ratio:.1f}", "", "", "")
        for epochs in (int(e) for e in args.pretrain_epochs.split(",")):
            config = make_config(work, args, epochs)
            summary = pretrain(config)
            _, state, _ = load_pretrained_encoder(Path(summary["checkpoint"]), context.dataset,
                                                  shape)
            model = SASRec(shape)
            model.load_state_dict(state)
            cosine, ratio = diagnostics(model, windows)
            tuned = finetune(context, config, init_from=Path(summary["checkpoint"]))
            scratch = scratch or finetune(context, config, init_from=None)
            row = [str(epochs), f"{cosine:.3f}", f"{ratio:.1f}",
                   f"{last_train_loss(tuned):.3f} / {last_train_loss(scratch):.3f}"]
            row += [f"{tuned['test'][p]['NDCG@10']:.4f} / {scratch['test'][p]['NDCG@10']:.4f}"
                    for p in ("full", "sampled-99")]
            table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
