"""The keras_mm version (a leaf module: importing it imports nothing else).

Example:
    >>> from keras_mm.version import __version__
    >>> __version__.count(".")
    2
"""

__version__ = "0.1.0"
