"""Search: one Optuna study per (task, strategy) and the training engine every strategy trains through.

The objective only orchestrates; strategies own their search space and their fit. Scores live here too.
"""
