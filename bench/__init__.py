"""Benchmarks: ``python -m bench.run_all [--smoke]`` or ``python -m bench.<name> [--smoke] [--json out.json]``.

See ``BENCHMARKS.md`` for what each one measures and the latest results. Never run by ``make test``
except for the tiny ``--smoke`` sizes in ``tests/test_bench_smoke.py``.
"""
