"""A/B experiments: reports from the attribution counts, the CLI, and a simulation.

Beside ``evaluation``: it reads through ``store`` and computes with ``model.abtest``;
serving's experiments router and ``eventrec experiment`` both use :mod:`.report`.
"""
