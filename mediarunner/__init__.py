"""mediarunner: distributed media processing on Celery."""

__version__ = "0.1.0"
