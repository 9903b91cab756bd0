"""Checkers for the exercises of chapter ch02_dropout."""

__all__: list[str] = []
