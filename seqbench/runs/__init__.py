"""Run records on disk: `runs/<run-id>/` with config.json, events.jsonl, summary.json, checkpoints.

`record` writes one run while it trains; `read` reads runs back for `compare` and `dash`, from
these files alone, so runs copied from other machines (or still being written) can be read.
"""
