"""Registered encoders, one module each. Importing this package registers them."""

from keras_mm.encoders.audio import MFCCEncoder
from keras_mm.encoders.base import Encoder
from keras_mm.encoders.bert import BertEncoder, read_bert_checkpoint
from keras_mm.encoders.keras_application import KerasApplicationEncoder, MobileNetV2Encoder, VGG16Encoder
from keras_mm.encoders.lstm import LSTMEncoder
from keras_mm.encoders.mfcc_cnn import MFCCCNNEncoder
from keras_mm.encoders.mfcc_gru import MFCCGRUEncoder
from keras_mm.encoders.precomputed import PrecomputedEncoder
from keras_mm.encoders.pretrained_weights import load_pretrained_weights
from keras_mm.encoders.small_cnn import SmallCNNEncoder
from keras_mm.encoders.tfhub import TFHubEncoder, resolve_hub_handle

__all__ = [
    "BertEncoder",
    "Encoder",
    "KerasApplicationEncoder",
    "LSTMEncoder",
    "MFCCCNNEncoder",
    "MFCCEncoder",
    "MFCCGRUEncoder",
    "MobileNetV2Encoder",
    "PrecomputedEncoder",
    "SmallCNNEncoder",
    "TFHubEncoder",
    "VGG16Encoder",
    "load_pretrained_weights",
    "read_bert_checkpoint",
    "resolve_hub_handle",
]
