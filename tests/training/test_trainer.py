import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from tests.conftest import tiny_encoders

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def script(out, *args, env=None, **popen):
    command = [sys.executable, "-m", "tests.training.train_script", str(out), *args]
    return subprocess.Popen(
        command, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen,
    )


def finish(process, timeout=400):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single_device_weights(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "w.npy"
    finish(script(out))
    return np.load(out)


def test_mirrored_two_replicas_match_single_device(single_device_weights, tmp_path):
    output = finish(script(tmp_path / "w.npy", "--strategy", "mirrored", "--split-cpu", "2"))
    assert "replicas 2" in output
    diff = np.abs(np.load(tmp_path / "w.npy") - single_device_weights).max()
    assert diff <= 1e-5, diff


def test_multi_worker_two_processes_match_single_process(single_device_weights, tmp_path):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(script(tmp_path / f"w{index}.npy", "--strategy", "multi_worker", env={"TF_CONFIG": tf_config}))
    outputs = [finish(p) for p in processes]
    assert all("replicas 2" in o for o in outputs)
    w0, w1 = np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w1.npy")
    np.testing.assert_array_equal(w0, w1)
    assert np.abs(w0 - single_device_weights).max() <= 1e-5


def test_sigkill_mid_training_resumes_and_matches_uninterrupted_run(tmp_path):
    epochs = "4"
    finish(script(tmp_path / "uninterrupted.npy", "--epochs", epochs, "--checkpoint-dir", str(tmp_path / "ckpt_a")))
    ckpt = tmp_path / "ckpt_b"
    process = script(tmp_path / "never.npy", "--epochs", epochs, "--checkpoint-dir", str(ckpt), "--step-delay", "0.3")
    deadline = time.time() + 300
    while not (ckpt / "ckpt-2.index").exists():
        assert process.poll() is None, process.communicate()[0][-2000:]
        assert time.time() < deadline, "no checkpoint after 300 s"
        time.sleep(0.1)
    time.sleep(0.5)  # now inside epoch 3
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "never.npy").exists()
    output = finish(script(tmp_path / "resumed.npy", "--epochs", epochs, "--checkpoint-dir", str(ckpt)))
    resumed_from = int(output.split("(epoch ")[1].split(" done")[0])
    assert resumed_from >= 2  # at most the interrupted epoch is lost
    np.testing.assert_allclose(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "uninterrupted.npy"), atol=1e-6)
    with open(ckpt / "history.json") as f:
        assert json.load(f)["epoch"] == [0, 1, 2, 3]


def _tiny_data(model, n=12, batch=6):
    raw = model.preprocessor.example_raw(n)
    x = {k: v.numpy() for k, v in model.preprocessor.process_batch(raw).items()}
    return tf.data.Dataset.from_tensor_slices((x, np.arange(n) % 3)).batch(batch)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_head(policy):
    config = keras_mm.ModelConfig(encoders=tiny_encoders(), fusion="attention", num_classes=3)
    model, history = keras_mm.train(config, _tiny_data, epochs=2, strategy=None, mixed_precision=policy, verbose=0)
    assert model.feature_encoders["image"].compute_dtype == policy.split("_")[1]
    assert model.head.output_layer.compute_dtype == "float32"
    assert model.feature_encoders["audio"].mfcc.compute_dtype == "float32"
    assert np.isfinite(history.history["loss"]).all()
    assert keras.mixed_precision.global_policy().name == "float32"  # restored


def test_history_early_stopping_and_tensorboard(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
    ds = _tiny_data(model)
    # lr 0 -> val_loss never improves -> stops after patience + 1 epochs
    _, history = keras_mm.train(
        model, ds, ds, epochs=10, strategy=None, optimizer=lambda: keras.optimizers.SGD(0.0),
        early_stopping=2, tensorboard_dir=str(tmp_path / "tb"), verbose=0,
    )
    assert history.epoch == [0, 1, 2]
    assert set(history.history) == {"loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy"}
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tb"))


def test_training_lowers_the_loss():
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=tiny_encoders(), num_classes=3)
    ds = _tiny_data(model)
    _, history = keras_mm.train(model, ds, epochs=8, strategy=None, learning_rate=3e-3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_bad_arguments_are_named():
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
    ds = _tiny_data(model)
    with pytest.raises(ValueError, match="strategy='mirorred' is not supported"):
        keras_mm.train(model, ds, strategy="mirorred")
    with pytest.raises(ValueError, match="needs the model built under that policy"):
        keras_mm.train(model, ds, strategy=None, mixed_precision="mixed_float16")
    with pytest.raises(ValueError, match="mixed_precision='fp8' is not supported"):
        keras_mm.train(model, ds, strategy=None, mixed_precision="fp8")
    with pytest.raises(ValueError, match="early_stopping monitors 'val_loss', which is not logged"):
        keras_mm.train(model, ds, strategy=None, early_stopping=1, verbose=0)


def test_every_registered_encoder_trains_under_mirrored_strategy():
    from keras_mm.registry import ENCODERS

    result = subprocess.run(
        [sys.executable, "-m", "tests.training.all_encoders_mirrored"], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ENCODERS.names():
        assert f"OK {name} replicas=2" in result.stdout, (name, result.stdout[-2000:])
