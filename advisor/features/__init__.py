"""Features: the frozen-prefix cache, so a trial with freeze depth k never recomputes blocks[:k].

Metrics read their penultimate features from the same cache.
"""
