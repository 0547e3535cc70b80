"""Notebook support: run-size profiles, the load-or-build workspace and the main job.

``profiles`` (``ci``, ``workshop``, ``full``) → ``workspace`` (each notebook reads the
previous one's artefacts from the results folder, or builds them) → ``pipeline``
(``workbench run``: execute the notebooks, export HTML, summarise).
"""
