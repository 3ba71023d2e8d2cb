"""Readers: one module per source format, each returning `RawData` (see `seqbench.data.raw`)."""
