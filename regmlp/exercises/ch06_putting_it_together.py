"""Checkers for the exercises of chapter ch06_putting_it_together."""

__all__: list[str] = []
