"""`python -m seqbench` is the same as the `seqbench` console script."""

from seqbench.cli import main

if __name__ == "__main__":
    main()
