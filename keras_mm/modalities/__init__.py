"""Modalities: the kinds of data keras_mm models take (image, text, audio, precomputed vectors, and user-registered ones).

Example:
    >>> {"audio", "image", "text", "vector"} <= set(keras_mm.list_modalities())   # plus any you register
    True
"""

from keras_mm.modalities.audio import AudioModality, load_audio_file
from keras_mm.modalities.base import Modality, get_modality
from keras_mm.modalities.image import ImageModality
from keras_mm.modalities.text import TextModality
from keras_mm.modalities.vector import VectorModality

__all__ = ["AudioModality", "ImageModality", "Modality", "TextModality", "VectorModality", "get_modality", "load_audio_file"]
