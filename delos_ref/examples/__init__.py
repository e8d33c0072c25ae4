"""Worked examples that are importable: ``directory_loglet`` (docs/tutorial-loglet.md), a
user's loglet kind and a loglet plugin (``delos_ref/plugins.py``)."""
