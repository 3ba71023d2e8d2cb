"""The one torch engine: encoder, models (hidden states), losses, metrics, evaluation, trainer."""
