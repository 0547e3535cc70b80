"""Experiments: many runs and what they say.

A *comparison* is every head and seed trained against one embedding (``compare``); an
*experiment* is a grid of comparisons, one per cell (``grid`` reads and expands the grid
file, ``experiment`` runs its cells, resumable and in parallel). ``results`` is the one
reader of both: summaries, tables, paired statistics, ``results.csv``.
"""
