"""Datasets: manifests of files and text -> ``tf.data``."""

from keras_mm.data.augmentation import Augmentation
from keras_mm.data.manifest import Manifest, check_manifest, from_manifest, guess_modality
from keras_mm.data.shutdown import release_live_iterators  # registers the at-exit release
from keras_mm.data.tfrecords import from_tfrecords, read_tfrecords_metadata, write_tfrecords
from keras_mm.modalities import load_audio_file

__all__ = [
    "Augmentation",
    "Manifest",
    "check_manifest",
    "from_manifest",
    "from_tfrecords",
    "guess_modality",
    "load_audio_file",
    "read_tfrecords_metadata",
    "release_live_iterators",
    "write_tfrecords",
]
