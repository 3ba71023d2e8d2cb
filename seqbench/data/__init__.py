"""Raw sources -> polars -> a cached, id-mapped, split dataset (design.md section 2)."""
