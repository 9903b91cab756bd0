"""Checkers for the exercises of chapter ch03_early_stopping."""

__all__: list[str] = []
