"""Evaluation: evaluators (metrics, WSOL sweeps), the localization loop, the evaluate CLI."""
