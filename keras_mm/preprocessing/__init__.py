"""Preprocessing shared by training (``tf.data``) and serving (export signature)."""

from keras_mm.preprocessing.audio import WaveformPreprocessor, decode_wav, decode_wav_batch, fit_waveforms, fit_waveforms_with_status, resample, waveform_status
from keras_mm.preprocessing.isolation import map_isolating_failures
from keras_mm.preprocessing.base import FeaturePreprocessor
from keras_mm.preprocessing.image import ImagePreprocessor, decode_and_resize_images
from keras_mm.preprocessing.multimodal import MultimodalPreprocessor
from keras_mm.preprocessing.vector import VectorPreprocessor, vector_status
from keras_mm.preprocessing.text import (
    BertTextPreprocessor,
    SentencePieceTextPreprocessor,
    VocabularyTextPreprocessor,
    build_vocabulary,
    normalize_albert_text,
    normalize_bert_text,
    read_vocabulary,
)

__all__ = [
    "BertTextPreprocessor",
    "FeaturePreprocessor",
    "ImagePreprocessor",
    "MultimodalPreprocessor",
    "SentencePieceTextPreprocessor",
    "VocabularyTextPreprocessor",
    "VectorPreprocessor",
    "WaveformPreprocessor",
    "build_vocabulary",
    "decode_wav",
    "decode_wav_batch",
    "waveform_status",
    "map_isolating_failures",
    "decode_and_resize_images",
    "fit_waveforms",
    "fit_waveforms_with_status",
    "normalize_albert_text",
    "normalize_bert_text",
    "read_vocabulary",
    "resample",
    "vector_status",
]
