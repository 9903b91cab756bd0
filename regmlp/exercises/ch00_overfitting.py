"""Checkers for the exercises of chapter ch00_overfitting."""

__all__: list[str] = []
