"""Switchyard: the pure routing core (no Celery, no FastAPI)."""

__version__ = "0.1.0"

AUTO_MODEL = "switchyard/auto"
