"""seqbench: train and benchmark sequential recommenders with trustworthy, comparable numbers.

From Python (docs/api.md): `seqbench.load(run_dir)` gives a `Recommender` of a finished run;
`seqbench.prepare(...)` and `seqbench.bench(...)` do what the commands do. Importing seqbench
loads none of torch, polars or the CLI: each name below imports its module on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from seqbench.api import Run, bench, load, prepare
    from seqbench.inference.recommender import Recommendation, Recommender

_LAZY = {"load": "seqbench.api", "prepare": "seqbench.api", "bench": "seqbench.api",
         "Run": "seqbench.api", "Recommender": "seqbench.inference.recommender",
         "Recommendation": "seqbench.inference.recommender"}

__all__ = ["Recommendation", "Recommender", "Run", "__version__", "bench", "load", "prepare"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seqbench' has no attribute {name!r}")
