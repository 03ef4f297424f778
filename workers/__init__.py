"""Celery shells around the pure pipeline in ``switchyard.pipeline``."""
