"""Preprocessing shared by training (``tf.data``) and serving (export signature)."""

from keras_mm.preprocessing.audio import WaveformPreprocessor, fit_waveforms
from keras_mm.preprocessing.base import FeaturePreprocessor
from keras_mm.preprocessing.image import ImagePreprocessor, decode_and_resize_images
from keras_mm.preprocessing.multimodal import MultimodalPreprocessor
from keras_mm.preprocessing.text import (
    BertTextPreprocessor,
    VocabularyTextPreprocessor,
    build_vocabulary,
    normalize_bert_text,
    read_vocabulary,
)

__all__ = [
    "BertTextPreprocessor",
    "FeaturePreprocessor",
    "ImagePreprocessor",
    "MultimodalPreprocessor",
    "VocabularyTextPreprocessor",
    "WaveformPreprocessor",
    "build_vocabulary",
    "decode_and_resize_images",
    "fit_waveforms",
    "normalize_bert_text",
    "read_vocabulary",
]
