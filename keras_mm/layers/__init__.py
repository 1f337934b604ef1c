"""Reusable Keras layers of keras_mm."""

from keras_mm.layers.mfcc import MFCC, slaney_mel_filterbank

__all__ = ["MFCC", "slaney_mel_filterbank"]
