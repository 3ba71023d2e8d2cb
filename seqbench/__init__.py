"""seqbench: train and benchmark sequential recommenders with trustworthy, comparable numbers."""

__version__ = "0.1.0"
