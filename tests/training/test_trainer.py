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


def test_a_resumed_run_stops_where_the_uninterrupted_one_does_with_the_same_best_weights(tmp_path):
    """Early stopping's state survives an interruption: best value, epochs waited and the best epoch's weights."""
    def run(epochs, checkpoint_dir=None):
        keras.utils.set_random_seed(0)
        model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
        ds = _tiny_data(model)
        # the loss falls every epoch, so in mode "max" the first epoch stays the best: patience 3 stops after 4 epochs
        return keras_mm.train(model, ds, ds, epochs=epochs, strategy=None, learning_rate=3e-3, verbose=0,
                              checkpoint_dir=checkpoint_dir,
                              early_stopping={"monitor": "loss", "mode": "max", "patience": 3})

    uninterrupted, history = run(10)
    assert history.epoch == [0, 1, 2, 3]
    ckpt = str(tmp_path / "ckpt")
    run(2, ckpt)  # "interrupted" after epoch 2, best epoch 1 (index 0) behind it
    assert os.path.isfile(os.path.join(ckpt, "best_weights.npz"))
    resumed, resumed_history = run(10, ckpt)
    assert resumed_history.epoch == [0, 1, 2, 3]
    for a, b in zip(resumed.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # the same command once more: the run had stopped, so nothing trains and the best weights come back
    again, again_history = run(10, ckpt)
    assert again_history.epoch == [0, 1, 2, 3]
    for a, b in zip(again.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_resumed_run_sees_the_data_order_the_uninterrupted_run_saw(tmp_path):
    """Shuffled data: each epoch's order comes from a seed generator that a new process (a new dataset) starts again.

    Without the fast-forward a run resumed after epoch 2 trained epoch 3 on epoch 1's order (a new-user
    trial: epoch 4 loss 0.3201 resumed vs 0.3144 uninterrupted).
    """
    def run(epochs, checkpoint_dir=None):
        keras.utils.set_random_seed(0)
        model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
        ds = _tiny_data(model).unbatch().shuffle(12, seed=5, reshuffle_each_iteration=True).batch(4)
        return keras_mm.train(model, ds, epochs=epochs, strategy=None, learning_rate=3e-3, verbose=0,
                              checkpoint_dir=checkpoint_dir)

    uninterrupted, history = run(4)
    ckpt = str(tmp_path / "ckpt")
    run(2, ckpt)
    resumed, resumed_history = run(4, ckpt)
    np.testing.assert_allclose(resumed_history.history["loss"], history.history["loss"], rtol=1e-5)
    for a, b in zip(resumed.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_training_lowers_the_loss():
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=tiny_encoders(), num_classes=3)
    ds = _tiny_data(model)
    _, history = keras_mm.train(model, ds, epochs=8, strategy=None, learning_rate=3e-3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_the_train_and_eval_steps_are_traced_once_with_a_partial_final_batch(monkeypatch):
    # A second trace (for the final partial batch) costs as much as the first: seconds for a pretrained backbone.
    traced = {"train": 0, "eval": 0}
    train_step, eval_step = keras_mm.training.TrainingSteps.train_step, keras_mm.training.TrainingSteps.eval_step

    def counting_train_step(self, batch):
        traced["train"] += 1
        return train_step(self, batch)

    def counting_eval_step(self, batch):
        traced["eval"] += 1
        return eval_step(self, batch)

    monkeypatch.setattr(keras_mm.training.TrainingSteps, "train_step", counting_train_step)
    monkeypatch.setattr(keras_mm.training.TrainingSteps, "eval_step", counting_eval_step)
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
    x = model.preprocessor.process_batch(model.preprocessor.example_raw(10))
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(10) % 3)).batch(4)  # batches of 4, 4, 2
    _, history = keras_mm.train(model, data, data, epochs=2, strategy=None, balance=None, verbose=0)
    assert len(history.history["loss"]) == 2
    assert traced == {"train": 1, "eval": 1}


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
    # the subprocess knows keras_mm's own encoders, not those registered by tests or docstring examples
    builtin = [n for n, cls in ENCODERS.items() if getattr(sys.modules.get(cls.__module__), cls.__name__, None) is cls
               and cls.__module__.startswith("keras_mm.")]
    assert {"bert", "mfcc_cnn", "small_cnn"} <= set(builtin), builtin
    for name in builtin:
        assert f"OK {name} replicas=2" in result.stdout, (name, result.stdout[-2000:])


@pytest.mark.parametrize(
    "monitor, values, patience, expected",
    [
        ("val_loss", [1.0, 0.8, 0.9, 0.85], 2, [False, False, False, True]),
        ("val_loss", [3.0, 2.0, 1.0, 0.5], 1, [False, False, False, False]),
        # "acc" in the name -> higher is better; an equal value is no improvement
        ("val_sparse_categorical_accuracy", [0.5, 0.6, 0.6, 0.55], 2, [False, False, False, True]),
    ],
)
def test_early_stopping_on_a_sequence(monitor, values, patience, expected):
    stopper = keras_mm.training.EarlyStopping(monitor=monitor, patience=patience)
    assert [stopper.update({monitor: v}) for v in values] == expected
    assert stopper.best == (max(values) if "acc" in monitor else min(values))


def test_early_stopping_counts_no_patience_before_start_from_epoch_and_replays_the_same_on_resume():
    # a slow starter: at chance for 4 epochs, then it learns (a transformer fusion with norms on AV-Digits)
    values = [0.1, 0.1, 0.1, 0.1, 0.3, 0.5, 0.5, 0.5]
    plain = keras_mm.training.EarlyStopping(monitor="val_accuracy", patience=2)
    assert [plain.update({"val_accuracy": v}) for v in values][:3] == [False, False, True]
    stopper = keras_mm.training.EarlyStopping(monitor="val_accuracy", patience=2, start_from_epoch=4)
    assert [stopper.update({"val_accuracy": v}) for v in values] == [False] * 7 + [True]
    assert stopper.best_epoch == 5
    resumed = keras_mm.training.EarlyStopping.from_argument({"monitor": "val_accuracy", "patience": 2, "start_from_epoch": 4})
    history = keras_mm.training.TrainingHistory({"val_accuracy": values[:4]}, list(range(4)))
    assert not resumed.replay(history) and resumed.wait == 0  # the warm-up epochs waited for nothing
    with pytest.raises(ValueError, match="start_from_epoch=-1: pass a number of epochs"):
        keras_mm.training.EarlyStopping(start_from_epoch=-1)


def test_a_run_stopped_at_chance_warns_that_it_has_not_started_learning():
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
    raw = model.preprocessor.example_raw(1)
    x = {k: np.repeat(v.numpy(), 3, axis=0) for k, v in model.preprocessor.process_batch(raw).items()}
    # one input under each of the 3 labels: whatever the model predicts, validation accuracy is exactly 1/3
    chance = tf.data.Dataset.from_tensor_slices((x, np.arange(3))).batch(3)
    stop = {"monitor": "val_sparse_categorical_accuracy", "patience": 1}
    with pytest.warns(UserWarning, match=r"after 2 epochs with the best val_sparse_categorical_accuracy 0.333, about chance "
                                         r"for 3 classes \(0.333\).*'start_from_epoch': 10"):
        keras_mm.train(model, _tiny_data(model), chance, epochs=5, strategy=None, early_stopping=stop, verbose=0)
    # no warning away from chance, or for a loss monitor
    learnt = keras_mm.training.EarlyStopping(monitor="val_accuracy", patience=1)
    assert [learnt.update({"val_accuracy": v}) for v in (0.6, 0.5)] == [False, True]
    assert learnt.stalled_message(num_classes=3) is None  # 0.6 against chance 0.333
    binary = keras_mm.training.EarlyStopping(monitor="val_accuracy", patience=1)
    assert [binary.update({"val_accuracy": v}) for v in (0.52, 0.5)] == [False, True]
    assert "about chance for 2 classes (0.500)" in binary.stalled_message(num_classes=2)
    loss = keras_mm.training.EarlyStopping(monitor="val_loss", patience=1)
    assert [loss.update({"val_loss": v}) for v in (0.33, 0.4)] == [False, True] and loss.stalled_message(3) is None


def test_early_stopping_restores_the_best_weights():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    stopper = keras_mm.training.EarlyStopping(patience=1)
    for value, fill in [(1.0, 1.0), (0.5, 2.0), (0.7, 3.0)]:
        model.set_weights([np.full_like(w, fill) for w in model.get_weights()])
        stop = stopper.update({"val_loss": value}, model)
    assert stop
    stopper.restore(model)
    assert all((w == 2.0).all() for w in model.get_weights())


def test_early_stopping_argument():
    from_argument = keras_mm.training.EarlyStopping.from_argument
    assert from_argument(None) is None and from_argument(False) is None
    stopper = from_argument(4)
    assert (stopper.monitor, stopper.patience, stopper.mode, stopper.restore_best_weights) == ("val_loss", 4, "min", True)
    stopper = from_argument({"monitor": "val_accuracy", "restore_best_weights": False})
    assert (stopper.patience, stopper.mode, stopper.restore_best_weights) == (3, "max", False)
    with pytest.raises(ValueError, match="early_stopping=True: pass a patience"):
        from_argument(True)
    with pytest.raises(ValueError, match=r"unknown keys \['patince'\]. Allowed: monitor, patience"):
        from_argument({"patince": 2})
    with pytest.raises(ValueError, match="mode='up' is not supported. Allowed: min, max"):
        from_argument({"mode": "up"})


@pytest.mark.parametrize(
    "empty", [lambda ds: ds.take(0), lambda ds: ds.filter(lambda x, y: False)], ids=["cardinality_0", "no_batch"]
)
def test_empty_validation_data_is_refused(empty, tmp_path):
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
    ds = _tiny_data(model)
    with pytest.raises(ValueError, match="validation_data is empty: it yields no batch.*validation_data=None"):
        keras_mm.train(model, ds, empty(ds), strategy=None, checkpoint_dir=str(tmp_path), verbose=0)
    assert os.listdir(tmp_path) == []  # refused before the first epoch


def test_missing_early_stopping_value_is_refused_before_training(tmp_path):
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
    with pytest.raises(ValueError, match="monitors 'val_loss', which is not logged. Logged: loss, sparse_categorical_accuracy$"):
        keras_mm.train(model, _tiny_data(model), strategy=None, early_stopping=1, checkpoint_dir=str(tmp_path), verbose=0)
    assert os.listdir(tmp_path) == []


class ZeroGradients(keras_mm.training.TrainingSteps):
    def transform_gradients(self, grads, variables):
        return [None if g is None else tf.zeros_like(g) for g in grads]


class ZeroLoss(keras_mm.training.TrainingSteps):
    def compute_loss(self, x, y, outputs, sample_weight=None):
        return 0.0 * super().compute_loss(x, y, outputs, sample_weight)


@pytest.mark.parametrize(
    "steps_class, changes", [(keras_mm.training.TrainingSteps, True), (ZeroGradients, False), (ZeroLoss, False)]
)
def test_training_steps_hooks_decide_the_update(steps_class, changes):
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=tiny_encoders(("small_cnn", "mfcc_cnn")), num_classes=3)
    before = [np.array(v) for v in model.trainable_variables]
    steps = steps_class(model, keras.optimizers.SGD(0.1), global_batch_size=6)
    logs = steps.train_epoch(_tiny_data(model))
    assert np.isfinite(logs["loss"]) and logs["loss"] > 0  # the logged loss is the head's, whatever is optimised
    moved = max(np.abs(np.array(v) - b).max() for v, b in zip(model.trainable_variables, before))
    assert (moved > 0) == changes, moved


def test_epoch_logger_verbosity(capsys, tmp_path):
    for verbose in (0, 2):
        logger = keras_mm.training.EpochLogger(epochs=3, verbose=verbose, tensorboard_dir=str(tmp_path / f"tb{verbose}"))
        logger.resumed("ckpt/ckpt-1", 1)
        logger.epoch_begin(1)
        logger.step(0, lambda: pytest.fail("no progress bar is shown, so the logs are not read"))
        logger.epoch_end(1, {"loss": 0.25, "val_loss": 0.5})
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["Resuming from ckpt/ckpt-1 (epoch 1 done)", "Epoch 2/3"]
    assert lines[2].endswith("s - loss: 0.2500 - val_loss: 0.5000") and len(lines) == 3  # verbose=0 printed nothing
    assert os.listdir(tmp_path / "tb2") and os.listdir(tmp_path / "tb0")


MIRRORED_VALIDATION = """
from keras_mm.training import split_cpu
split_cpu(2)
import keras, numpy as np, tensorflow as tf, keras_mm
from tests.conftest import tiny_encoders

def data(rows):
    def make(model):
        x = {k: v.numpy() for k, v in model.preprocessor.process_batch(model.preprocessor.example_raw(rows, seed=rows)).items()}
        return tf.data.Dataset.from_tensor_slices((x, np.arange(rows) % 3)).batch(8)
    return make

config = keras_mm.ModelConfig(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
for strategy in (None, "mirrored"):
    keras.utils.set_random_seed(0)
    _, history = keras_mm.train(config, data(16), data(14), strategy=strategy, verbose=0)  # val: 8 + 6 rows
    print(strategy, "val_loss", history.history["val_loss"][0], "val_acc", history.history["val_sparse_categorical_accuracy"][0])
try:
    keras_mm.train(config, data(16), data(0), strategy="mirrored", verbose=0)
except ValueError as error:
    print("refused:", error)
"""


def test_a_partial_validation_batch_counts_under_two_replicas_as_on_one_device():
    # the last partial batch (6 of 8 rows) was dropped under 2 replicas: other validation numbers than one device
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_VALIDATION], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = {}
    for line in result.stdout.splitlines():
        if line.startswith(("None val_loss ", "mirrored val_loss ")):
            strategy, _, loss, _, accuracy = line.split()
            numbers[strategy] = (float(loss), float(accuracy))
    (loss_one, acc_one), (loss_two, acc_two) = numbers["None"], numbers["mirrored"]
    assert abs(loss_one - loss_two) <= 1e-4 and abs(acc_one - acc_two) <= 1e-6, numbers
    assert abs(acc_one * 14 - round(acc_one * 14)) < 1e-4  # a count out of all 14 rows, not of 8
    assert "refused: validation_data is empty" in result.stdout, result.stdout[-2000:]


def test_a_model_built_in_the_strategy_scope_trains_and_one_built_outside_is_refused():
    # the scope check read a Keras 3 variable's tf.distribute attribute, which only the wrapped tf.Variable has
    result = subprocess.run([sys.executable, "-m", "tests.training.built_model_scope_script"], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OUTSIDE refused: The model was built outside strategy.scope()" in result.stdout, result.stdout
    assert "INSIDE trained 2" in result.stdout, result.stdout


def test_resuming_with_another_model_says_which_folder_to_clear(tmp_path):
    def data(model):
        x = model.preprocessor.process_batch(model.preprocessor.example_raw(8))
        return tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3)).batch(4)

    def config(fusion):
        return keras_mm.ModelConfig(encoders=tiny_encoders(("small_cnn", "mfcc_cnn")), fusion=fusion, num_classes=3)

    keras_mm.train(config("concat"), data, epochs=1, verbose=0, checkpoint_dir=str(tmp_path))
    # was TensorFlow's "Received incompatible tensor with shape ..." with no word of the checkpoint folder
    with pytest.raises(ValueError, match=r"checkpoint_dir .* holds a checkpoint of another model .* delete that folder"):
        keras_mm.train(config("gated"), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path))


def test_resuming_removes_the_folder_of_a_checkpoint_write_that_was_killed(tmp_path):
    data = _tiny_data
    config = keras_mm.ModelConfig(encoders=tiny_encoders(("small_cnn", "mfcc_cnn")), num_classes=3)
    keras_mm.train(config, data, epochs=1, verbose=0, checkpoint_dir=str(tmp_path))
    # what `kill -9` during the write of checkpoint 3 leaves (TensorFlow's own layout); TensorFlow replaces it
    # only when it writes checkpoint 3 again, which a resumed run that stops earlier (early stopping) never does
    partial = tmp_path / "ckpt-3_temp"
    partial.mkdir()
    (partial / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 1000)
    keep = tmp_path / "notes_temp"
    keep.mkdir()
    model, history = keras_mm.train(config, data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path))
    assert history.epoch == [0, 1]
    assert not partial.exists() and keep.exists()
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")


def test_resuming_under_other_class_names_is_refused(tmp_path):
    # same shapes, other label order: the restored weights would answer with the old ids under the new names
    def data(model):
        x = model.preprocessor.process_batch(model.preprocessor.example_raw(8))
        return tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3)).batch(4)

    def config(class_names):
        return keras_mm.ModelConfig(encoders=tiny_encoders(("small_cnn", "mfcc_cnn")), num_classes=3, class_names=class_names)

    keras_mm.train(config(["cat", "dog", "owl"]), data, epochs=1, verbose=0, checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"holds a run trained with class_names=\['cat', 'dog', 'owl'\] \(in id order\); "
                                         r"this model has class_names=\['owl', 'dog', 'cat'\].*delete that folder"):
        keras_mm.train(config(["owl", "dog", "cat"]), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path))
    model, history = keras_mm.train(config(["cat", "dog", "owl"]), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path))
    assert history.epoch == [0, 1]  # the same names resume


def test_resuming_checks_the_fusion_settings_and_reads_checkpoints_written_before_they_were_recorded(tmp_path):
    def data(model):
        x = model.preprocessor.process_batch(model.preprocessor.example_raw(8))
        return tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3)).batch(4)

    def config(fusion, class_names=None):
        encoders = tiny_encoders(("small_cnn", "mfcc_cnn"))
        encoders["image"]["input_normalization"] = "rescale"  # what small_cnn computed when those runs were written
        return keras_mm.ModelConfig(encoders=encoders, fusion=fusion, num_classes=3, class_names=class_names)

    share = {"name": "attention", "uniform_share": 0.5}
    keras_mm.train(config(share), data, epochs=1, verbose=0, checkpoint_dir=str(tmp_path / "a"))
    # same shapes, another formula: was restored silently
    with pytest.raises(ValueError, match=r"another model \(its fusion: uniform_share=0.5 there, 0.2 here\)"):
        keras_mm.train(config("attention"), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path / "a"))
    # a checkpoint from before the fusion was recorded trained attention with the plain softmax
    plain = {"name": "attention", "uniform_share": 0.0}
    keras_mm.train(config(plain, ["a", "b", "c"]), data, epochs=1, verbose=0, checkpoint_dir=str(tmp_path / "b"))
    (tmp_path / "b" / "run_identity.json").write_text('{"class_names": null}')  # as those runs wrote it
    with pytest.raises(ValueError, match=r"started before attention fusion's uniform_share existed.*uniform_share=0.2"):
        keras_mm.train(config("attention", ["a", "b", "c"]), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path / "b"))
    with pytest.raises(ValueError, match=r"class_names=None \(in id order\); this model has class_names=\['c', 'b', 'a'\]"):
        keras_mm.train(config(plain, ["c", "b", "a"]), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path / "b"))
    # names in sorted order are the ids such a run used for string labels (a model now takes them from the manifest)
    _, history = keras_mm.train(config(plain, ["a", "b", "c"]), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path / "b"))
    assert history.epoch == [0, 1]


def test_resuming_checks_encoder_settings_that_change_no_weight_shape(tmp_path):
    # small_cnn's input_normalization: the same weights, another input; restored silently before it was recorded
    def data(model):
        x = model.preprocessor.process_batch(model.preprocessor.example_raw(8))
        return tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3)).batch(4)

    def config(input_normalization=None):
        encoders = tiny_encoders(("small_cnn", "mfcc_cnn"))
        if input_normalization:
            encoders["image"]["input_normalization"] = input_normalization
        return keras_mm.ModelConfig(encoders=encoders, num_classes=3)

    keras_mm.train(config(), data, epochs=1, verbose=0, checkpoint_dir=str(tmp_path / "a"))
    assert json.loads((tmp_path / "a" / "run_identity.json").read_text())["encoders"] == {
        "image": {"input_normalization": "per_image"}}
    with pytest.raises(ValueError, match=r"encoders\['image'\] had input_normalization='per_image'; this model has "
                                         r"input_normalization='rescale'.*encoders=\{'image': \{\.\.\., "
                                         r"'input_normalization': 'per_image'\}\}"):
        keras_mm.train(config("rescale"), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path / "a"))
    # a run whose identity did not record encoders trained small_cnn on pixels / 255
    keras_mm.train(config("rescale"), data, epochs=1, verbose=0, checkpoint_dir=str(tmp_path / "b"))
    identity = json.loads((tmp_path / "b" / "run_identity.json").read_text())
    del identity["encoders"]
    (tmp_path / "b" / "run_identity.json").write_text(json.dumps(identity))
    with pytest.raises(ValueError, match=r"had input_normalization='rescale' \(recorded before these settings were"):
        keras_mm.train(config(), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path / "b"))
    _, history = keras_mm.train(config("rescale"), data, epochs=2, verbose=0, checkpoint_dir=str(tmp_path / "b"))
    assert history.epoch == [0, 1]


@pytest.mark.parametrize("verbose", [5, -1, "yes", 1.0])
def test_unknown_verbose_is_refused_naming_the_allowed_values(verbose):
    with pytest.raises(ValueError, match=r"verbose=.*Allowed: 'auto', 0 \(silent\), 1 \(progress bar\), 2"):
        keras_mm.train({"encoders": {"image": "small_cnn"}, "num_classes": 2}, lambda m: None, verbose=verbose)
