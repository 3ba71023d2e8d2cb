"""What seqbench shows people: Rich tables for commands, `compare` and `dash`."""
