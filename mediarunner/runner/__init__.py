"""Remote (HTTP) runners: ``mediarunner runner register|serve|unregister|ls-registered``.

A remote runner holds only a runner token: it asks the HTTP API for jobs, downloads inputs and
uploads results through it, and runs the same handlers as Celery workers
(``mediarunner.tasks.handlers``) with an HTTP lease (:mod:`~mediarunner.runner.lease`) in
place of the database. It needs no database, broker or storage settings."""
