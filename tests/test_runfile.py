"""Run files: every key and value is checked, and errors name the key and the allowed keys or values."""

import dataclasses
import inspect
import logging
import os
import shutil

import numpy as np
import pytest
import yaml

import keras_mm
from keras_mm.data import Manifest
from keras_mm.export.tflite import tflite_interpreter_class
from keras_mm.runfile import RunFile, RunFileError, export_model, run_check

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples", "run.yaml")
SAMPLE = keras_mm.datasets.sample_manifest_path()


def load(document, source="run.yaml"):
    return RunFile.from_dict(document, source=source, base_dir="/base")


def minimal(**sections):
    return {"model": {"preset": "tiny_concat"}, "data": {"manifest": SAMPLE}, **sections}


def test_the_example_run_file_loads_with_paths_next_to_it():
    run = RunFile.load(EXAMPLE)
    assert os.path.samefile(run.data.manifest, SAMPLE)
    assert run.output.dir == os.path.normpath(os.path.join(os.path.dirname(EXAMPLE), "..", "saved_models", "example_run"))
    assert run.training.checkpoint_dir == os.path.join(run.output.dir, "checkpoints")
    config = run.model_config()
    assert config.class_names == run.data.class_names and config.num_classes == 10
    assert set(config.encoders) == {"image", "text", "audio"}


def test_a_bad_value_names_the_key_and_what_it_must_be():
    with pytest.raises(RunFileError, match=r"^run.yaml: training.epochs must be a positive integer, got 'ten'\.$"):
        load(minimal(training={"epochs": "ten"}))
    with pytest.raises(RunFileError, match=r"training.strategy must be one of default, auto, mirrored, multi_worker, got 'mirorred'"):
        load(minimal(training={"strategy": "mirorred"}))
    with pytest.raises(RunFileError, match=r"data.cache must be true or false, got 'yes please'"):
        load(minimal(data={"manifest": SAMPLE, "cache": "yes please"}))
    with pytest.raises(RunFileError, match=r"training.learning_rate must be a positive number, got -0.1"):
        load(minimal(training={"learning_rate": -0.1}))


def test_learning_rates_written_like_2e_3_are_numbers():
    # YAML 1.1 reads 2e-3 (no dot) as a string.
    assert load(minimal(training={"learning_rate": "2e-3"})).training.learning_rate == 0.002


def test_unknown_keys_list_the_allowed_ones():
    with pytest.raises(RunFileError, match=r"unknown key training.epoch\. Allowed keys in training: .*batch_size.*epochs"):
        load(minimal(training={"epoch": 3}))
    with pytest.raises(RunFileError, match=r"unknown section 'trainnig'\. Allowed sections: model, data, training, output, export"):
        load(minimal(trainnig={}))
    with pytest.raises(RunFileError, match=r"unknown key model.fussion\. Allowed keys in model \(keras_mm.build_model's arguments\): .*fusion"):
        load({"model": {"fussion": "concat"}, "data": {"manifest": SAMPLE}})
    with pytest.raises(RunFileError, match=r"data.manifest is required"):
        load({"data": {}})


def test_training_passes_on_every_other_train_argument():
    """The allowed training keys follow keras_mm.train's signature (new train() arguments need no change here)."""
    own = {"epochs", "batch_size", "learning_rate", "strategy", "checkpoint_dir", "seed"}
    set_by_the_run = {"model", "train_data", "validation_data", "global_batch_size", "verbose"}
    passed_on = set(inspect.signature(keras_mm.train).parameters) - own - set_by_the_run
    assert {"early_stopping", "mixed_precision"} <= passed_on
    run = load(minimal(training={key: f"value of {key}" for key in passed_on}))
    arguments = run.train_arguments()
    for key in passed_on - {"tensorboard_dir"}:
        assert arguments[key] == f"value of {key}"
    assert arguments["tensorboard_dir"] == os.path.join("/base", "value of tensorboard_dir")  # a folder: next to the run file
    assert arguments["strategy"] is None and arguments["epochs"] == 10


def test_set_overrides_are_read_as_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(f"data: {{manifest: {SAMPLE}}}\ntraining: {{epochs: 5}}\n")
    run = RunFile.load(str(path), overrides=["training.epochs=1", "export.tflite=m.tflite", "data.cache=false"])
    assert run.training.epochs == 1 and run.data.cache is False
    assert run.export.tflite == str(tmp_path / "m.tflite")
    assert run.output.dir == str(tmp_path / "runs" / "run")
    with pytest.raises(RunFileError, match=r"expected SECTION.KEY=VALUE"):
        RunFile.load(str(path), overrides=["epochs=1"])


def test_unreadable_and_invalid_yaml_files_say_so(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training: {epochs: [1\n")
    with pytest.raises(RunFileError, match=r"run.yaml: not valid YAML"):
        RunFile.load(str(path))
    with pytest.raises(RunFileError, match=r"cannot read the run file"):
        RunFile.load(str(tmp_path / "missing.yaml"))
    path.write_text("- just\n- a list\n")
    with pytest.raises(RunFileError, match=r"the run file must be a mapping of keys to values, got list"):
        RunFile.load(str(path))


def test_model_errors_name_the_model_section():
    with pytest.raises(RunFileError, match=r"^run.yaml: model: preset='tiny' is not registered\. Available: "):
        load({"model": {"preset": "tiny"}, "data": {"manifest": SAMPLE}})
    with pytest.raises(RunFileError, match=r"model needs encoders .* or a preset"):
        load({"model": {"fusion": "concat"}, "data": {"manifest": SAMPLE}})
    with pytest.raises(RunFileError, match=r"model.class_names and data.class_names differ"):
        load({"model": {"preset": "tiny_concat", "class_names": list("abcdefghij")},
              "data": {"manifest": SAMPLE, "class_names": list("0123456789")}})


def test_components_are_checked_when_the_file_is_loaded():
    with pytest.raises(RunFileError, match=r"^run.yaml: model.encoders.image='smal_cnn' is not a registered encoder\. "
                                           r"Did you mean 'small_cnn'\?"):
        load({"model": {"encoders": {"image": "smal_cnn"}}, "data": {"manifest": SAMPLE}})
    with pytest.raises(RunFileError, match=r"^run.yaml: model.fusion: unknown argument\(s\) 'projection' for 'attention'\. Allowed: "):
        load({"model": {"preset": "tiny_attention", "fusion": {"name": "attention", "projection": 8}}, "data": {"manifest": SAMPLE}})
    with pytest.raises(RunFileError, match=r"^run.yaml: model.head='clasification' is not a registered head"):
        load({"model": {"preset": "tiny_attention", "head": "clasification"}, "data": {"manifest": SAMPLE}})


def test_left_out_options_keep_train_defaults():
    arguments = load(minimal()).train_arguments()
    assert "learning_rate" not in arguments  # train's default: the fusion's recipe
    assert arguments["strategy"] is None and arguments["epochs"] == 10
    assert load(minimal(training={"learning_rate": 0.01})).train_arguments()["learning_rate"] == 0.01


def test_classes_come_from_the_data_when_the_model_names_none():
    names = [f"digit {i}" for i in range(10)]
    run = load(minimal(data={"manifest": SAMPLE, "class_names": names}))
    assert run.model_config().class_names == names
    # integer labels without names: as many classes as the largest id + 1
    config = load(minimal()).model_config()
    assert config.class_names is None and config.num_classes == 10
    # an embedding head has no classes to fill in
    assert load({"model": {"preset": "tiny_embedding"}, "data": {"manifest": SAMPLE}}).model_config().num_classes is None


def test_check_logs_the_skipped_rows_once(tmp_path, caplog):
    # counting the manifest's classes read the rows too and logged "skipped 1 of 100 rows" a second time
    shutil.copytree(os.path.dirname(SAMPLE), tmp_path / "s")
    first = Manifest(str(tmp_path / "s" / "manifest.csv")).rows[0]["image"]
    (tmp_path / "s" / first).unlink()
    run = load(minimal(data={"manifest": str(tmp_path / "s" / "manifest.csv")}))
    with caplog.at_level("WARNING", logger="keras_mm"):
        problems = run_check(run)
    assert problems and caplog.text.count(": skipped ") == 1, caplog.text
    assert logging.getLogger("keras_mm").level == logging.NOTSET  # restored


def test_the_run_as_trained_reloads_to_the_same_run(tmp_path):
    run = RunFile.load(EXAMPLE, overrides=["training.epochs=3"])
    written = tmp_path / "run.yaml"
    written.write_text(yaml.safe_dump(run.to_dict()))
    again = RunFile.load(str(written))
    assert again.training.epochs == 3 and again.model_config() == run.model_config()
    assert dataclasses.replace(again, source=run.source) == run  # absolute paths: valid from any folder


def test_encoder_files_are_found_next_to_the_run_file(tmp_path):
    (tmp_path / "vocab.txt").write_text("cat\ndog\n")
    document = {"model": {"encoders": {"text": {"name": "lstm", "vocabulary": "vocab.txt"},
                                       "image": {"name": "mobilenet_v2", "weights": "not_here.h5"}}},
                "data": {"manifest": SAMPLE}}
    model = RunFile.from_dict(document, source="run.yaml", base_dir=str(tmp_path)).model
    assert model["encoders"]["text"]["vocabulary"] == str(tmp_path / "vocab.txt")  # was read from the working directory
    assert model["encoders"]["image"]["weights"] == "not_here.h5"  # not next to the run file: kept as written


def test_an_int8_tflite_export_is_calibrated_on_the_training_split(tmp_path):
    run = RunFile.from_dict({"model": {"preset": "tiny_concat", "num_classes": 10}, "data": {"manifest": SAMPLE},
                             "export": {"tflite": "m.tflite", "tflite_quantization": "int8"}},
                            source="run.yaml", base_dir=str(tmp_path))
    model = keras_mm.build_model(preset="tiny_concat", num_classes=10)
    assert export_model(run, model, verbose=False) == [str(tmp_path / "m.tflite")]
    interpreter = tflite_interpreter_class()[0](model_path=str(tmp_path / "m.tflite"))
    assert any(t["dtype"] == np.int8 for t in interpreter.get_tensor_details())  # int8 activations: it was calibrated
    with pytest.raises(RunFileError, match=r"export.tflite_quantization must be one of null, dynamic, float16, int8, got 'int4'"):
        load(minimal(export={"tflite_quantization": "int4"}))
