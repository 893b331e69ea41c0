"""Plugins: the hooks, the typed contracts and the plugin manager.

Plugins import the SDK in this package's __init__ and nothing else.
"""
