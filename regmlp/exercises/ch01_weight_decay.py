"""Checkers for the exercises of chapter ch01_weight_decay."""

__all__: list[str] = []
