"""``tunesmith sweep``: a hyperparameter grid (or random search) run as ordinary runs, compared.

grid.py parses ``--grid`` into points and names them; runner.py plans, validates and runs them
(one subprocess each, resumable); report.py writes ``sweep_results.csv``, ``sweep_report.md`` and
the plots.
"""
