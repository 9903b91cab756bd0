"""Checkers for the exercises of chapter ch05_residual."""

__all__: list[str] = []
