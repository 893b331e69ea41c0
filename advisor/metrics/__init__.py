"""Metrics: kernels and the signal pipeline that turns features into the Signals the advice reads.

Metric plugins compute; this package feeds them (train+val target rows only) and records what did not apply.
"""
