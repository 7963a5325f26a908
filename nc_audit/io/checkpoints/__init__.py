"""Checkpoints: loaded without code execution, their head found, written self-describing."""
