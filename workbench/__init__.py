"""PMI label-embedding research workbench.

Each step of the method lives in its own module (see the README's module map);
importing :mod:`workbench` is cheap and never imports Keras.
"""

__version__ = "0.1.0"
