"""Advice: Signals + target size + applicability -> a prior ranking and a per-strategy risk, with reasons.

Cheap and deterministic: no training happens here.
"""
