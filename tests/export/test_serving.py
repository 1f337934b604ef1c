import base64
import json

import numpy as np
import pytest

from keras_mm.export.serving import grpc_request, pad_and_stack, rest_request

SAMPLES = {"image": [b"\x89PNG..", b"\xff\xd8.."], "text": ["a dog", "ünï"], "audio": [np.zeros(3, "float32"), np.ones(2, "float32")]}


def test_rest_row_format():
    body = json.loads(rest_request(SAMPLES))
    assert body["signature_name"] == "serving_default"
    first = body["instances"][0]
    assert base64.b64decode(first["image"]["b64"]) == b"\x89PNG.."
    assert first["text"] == "a dog" and first["audio"] == [0.0, 0.0, 0.0]


def test_rest_columnar_format():
    body = json.loads(rest_request(SAMPLES, format="columnar", signature_name="serving_wav"))
    assert body["signature_name"] == "serving_wav"
    assert [base64.b64decode(x["b64"]) for x in body["inputs"]["image"]] == SAMPLES["image"]
    assert body["inputs"]["text"] == ["a dog", "ünï"]


def test_rest_rejects_bad_arguments():
    with pytest.raises(ValueError, match="format='rows' is not supported. Allowed: row, columnar"):
        rest_request(SAMPLES, format="rows")
    with pytest.raises(ValueError, match="same number of samples"):
        rest_request({"image": [b"a"], "text": ["a", "b"]})


def test_grpc_predict_request():
    import tensorflow as tf

    request = grpc_request(SAMPLES, "digits", version=3)
    assert request.model_spec.name == "digits" and request.model_spec.version.value == 3
    assert request.model_spec.signature_name == "serving_default"
    assert list(tf.make_ndarray(request.inputs["image"])) == SAMPLES["image"]
    audio = tf.make_ndarray(request.inputs["audio"])
    assert audio.shape == (2, 3) and audio.dtype == np.float32
    np.testing.assert_array_equal(audio[1], [1, 1, 0])


def test_pad_and_stack_zero_pads_to_the_longest():
    stacked = pad_and_stack([[1.0, 2.0, 3.0], np.array([4.0]), [[5.0], [6.0]]])
    assert stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked, [[1, 2, 3], [4, 0, 0], [5, 6, 0]])
    assert pad_and_stack([]).shape == (0, 0)


def test_keras_mm_serving_is_the_export_serving_module():
    import keras_mm
    import keras_mm.export.serving

    assert keras_mm.serving is keras_mm.export.serving
    assert json.loads(keras_mm.serving.rest_request({"text": ["a"]}))["instances"] == [{"text": "a"}]
