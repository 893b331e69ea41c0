"""Runs: where a run lives (directory, Optuna storage, task store) and the processes that work on it.

Workers join a run's search, background runs serve the dashboard, reopen reads a finished run back.
"""
