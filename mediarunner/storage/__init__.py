"""Where files come from and where they go: one :class:`~mediarunner.storage.store.Store` per location.

* ``store``      the Store protocol, the local store and ``open_store`` (the one place that tells
                 local from remote);
* ``remote``     the remote store (fsspec: S3, SFTP, FTP); ``connection`` (retries with tenacity),
                 ``openers`` (one filesystem opener per scheme), ``classify`` (what a failure means);
* ``http``       http(s) inputs (input-only): size cap, resume with Range, allow-list, no redirects;
* ``local``      atomic local publishing (temporary sibling, fsync, rename) and free space;
* ``layout``     publish order (playlists and manifests last: ``DEFAULT_LAST``) and ``Published``.

Settings (endpoints, credentials, retries, roots) are read from :class:`~mediarunner.config.Settings`.
Pure library: no Celery, no SQL."""
