"""Using a finished run: recommend (`recommender`), read and write the files `recommend`
takes and writes (`files`), and export for serving (`export`)."""

from seqbench.inference.recommender import Recommendation, Recommender, load

__all__ = ["Recommendation", "Recommender", "load"]
