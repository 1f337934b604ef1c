"""Reusable Keras layers of keras_mm."""

from keras_mm.layers.head_combination import HeadCombination
from keras_mm.layers.image_standardization import PerImageStandardization
from keras_mm.layers.mfcc import MFCC, slaney_mel_filterbank
from keras_mm.layers.modality_dropout import ModalityDropout

__all__ = ["MFCC", "HeadCombination", "ModalityDropout", "PerImageStandardization", "slaney_mel_filterbank"]
