"""The Celery app and thin task adapters around pipeline functions."""
