"""Audio encoders over the in-model MFCC front-end."""

import keras

from keras_mm.encoders.base import Encoder
from keras_mm.layers.mfcc import MFCC
from keras_mm.preprocessing.audio import WaveformPreprocessor


class MFCCEncoder(Encoder):
    """Shared front-end: waveform -> MFCC -> LayerNorm (MFCCs are in the hundreds).

    Args:
        sample_rate: sampling rate the model expects (resample before).
        num_samples: fixed clip length; shorter clips are zero-padded, longer cropped.
        n_mfcc, n_fft, hop_length, n_mels: MFCC settings (see ``keras_mm.layers.MFCC``).
    """

    modality = "audio"

    def __init__(
        self,
        sample_rate=16000,
        num_samples=16000,
        n_mfcc=40,
        n_fft=512,
        hop_length=160,
        n_mels=64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_samples < n_fft // 2 + 1:
            raise ValueError(f"num_samples={num_samples} is shorter than half a frame (n_fft={n_fft}).")
        self.sample_rate = int(sample_rate)
        self.num_samples = int(num_samples)
        self.mfcc = MFCC(
            sample_rate=sample_rate, n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, name="mfcc"
        )
        self.mfcc_norm = keras.layers.LayerNormalization(name="mfcc_norm", dtype="float32")

    def input_signature(self):
        return {"": ((self.num_samples,), "float32")}

    def build_preprocessor(self, feature):
        return WaveformPreprocessor(feature, self.num_samples, self.sample_rate)

    def features(self, inputs):
        x = self.mfcc_norm(self.mfcc(inputs[""]))
        return keras.ops.cast(x, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        m = self.mfcc
        config.update(
            {
                "sample_rate": self.sample_rate,
                "num_samples": self.num_samples,
                "n_mfcc": m.n_mfcc,
                "n_fft": m.n_fft,
                "hop_length": m.hop_length,
                "n_mels": m.n_mels,
            }
        )
        return config
