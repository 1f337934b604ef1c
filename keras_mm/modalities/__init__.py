"""Modalities: the kinds of data keras_mm models take (image, text, audio, and user-registered ones).

Example:
    >>> sorted(keras_mm.list_modalities())[:3]
    ['audio', 'image', 'text']
"""

from keras_mm.modalities.audio import AudioModality, load_audio_file
from keras_mm.modalities.base import Modality, get_modality
from keras_mm.modalities.image import ImageModality
from keras_mm.modalities.text import TextModality

__all__ = ["AudioModality", "ImageModality", "Modality", "TextModality", "get_modality", "load_audio_file"]
