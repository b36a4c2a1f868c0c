"""Where files come from and where they go: locations, roots, local and remote (fsspec) stores.

Pure library: no Celery, no SQL."""
