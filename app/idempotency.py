"""Idempotency-Key handling (to be written)."""
from flask import Flask


def init_app(app: Flask) -> None:
    """Install the Idempotency-Key hooks."""
