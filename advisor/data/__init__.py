"""Data: load a Domain from an image folder, a feature table or a built-in scenario, validated in full.

Splits the target into seeded, stratified train/validation/test; only the verdict reads the test rows.
"""
