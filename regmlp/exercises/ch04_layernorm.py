"""Checkers for the exercises of chapter ch04_layernorm."""

__all__: list[str] = []
