"""Reading a dataset: dispatch on the preset's reader, one module per format in `readers/`.

`read` is the single entry point: it dispatches on the preset's reader name, so `prep` never
needs to know which format a dataset comes in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from seqbench.config import DataConfig
from seqbench.data.presets import Preset
from seqbench.data.raw import RawData
from seqbench.data.readers import amazon, generic, movielens, s3rec, synthetic

Files = dict[str, Path]

READERS: dict[str, Callable[[Files, DataConfig], RawData]] = {
    "synthetic": lambda files, c: synthetic.generate(
        users=c.users, items=c.items, mean_len=c.mean_len, seed=c.data_seed
    ),
    "movielens-csv": lambda files, c: movielens.read_ratings_csv(files["ratings"]),
    "movielens-dat": lambda files, c: movielens.read_ratings_dat(files["ratings"]),
    "movielens-tab": lambda files, c: movielens.read_u_data(files["ratings"]),
    "amazon-ratings": lambda files, c: amazon.read_ratings_csv(files["ratings"]),
    "amazon-5core": lambda files, c: amazon.read_5core(files["reviews"], files["meta"]),
    "s3rec": lambda files, c: s3rec.read_s3rec(files["sequences"], files.get("attributes")),
    "generic": lambda files, c: generic.read_generic(
        files["interactions"], c.user_col, c.item_col, c.time_col
    ),
}


def read(preset: Preset, files: Files, config: DataConfig) -> RawData:
    """Read the files of `preset` (role -> path) into canonical interactions (+ attributes)."""
    return READERS[preset.reader](files, config)
