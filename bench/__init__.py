"""flaskr's benchmarks: bench/run's sections and the scripts beside it.

A package so that its parts import each other by name (``python -m bench.run``, which
``bench/run`` runs from the checkout) instead of through ``sys.path``.
"""
