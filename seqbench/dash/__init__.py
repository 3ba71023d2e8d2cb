"""`seqbench dash`: a live Textual dashboard over a runs directory (see `app.run_dash`).

Kept free of imports so that the rest of seqbench never pays for Textual unless dash runs.
"""
