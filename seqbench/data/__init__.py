"""Raw sources -> polars -> a cached, id-mapped, split dataset (docs/datasets.md)."""
