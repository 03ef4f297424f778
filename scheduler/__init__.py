"""Periodic tasks (Celery beat)."""
