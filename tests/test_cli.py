import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mm
from tests.conftest import tiny_encoders


def run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "keras_mm.cli", *args], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def cli_exit_message(capfd, *args):
    """The message ``keras-mm args`` exits with, run in this process; fails unless it exits with an error.

    Nothing on stderr may hold a traceback, TensorFlow's C++ records included (``capfd`` sees file descriptor 2).
    """
    from keras_mm import cli

    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(args))
    assert exit_info.value.code not in (0, None), args
    assert "Traceback" not in capfd.readouterr().err, args
    return str(exit_info.value.code)


def test_list():
    out = run_cli("list")
    assert "encoders (audio): mfcc_cnn, mfcc_gru" in out and "fusions: attention, concat" in out


def test_export_then_predict_from_files_with_a_missing_modality(tmp_path, capfd):
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(encoders=tiny_encoders(), fusion="attention", num_classes=3)
    model_path = str(tmp_path / "m.keras")
    model.save(model_path)
    version_dir = run_cli("export", "--model", model_path, "--output", str(tmp_path / "served"), "--class-names", "a,b,c").strip().splitlines()[-1]
    assert version_dir.endswith(os.path.join("served", "1"))

    image = tmp_path / "x.png"
    image.write_bytes(tf.io.encode_png(np.full((10, 10, 3), 200, np.uint8)).numpy())
    wav = tmp_path / "x.wav"
    tone = (0.3 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440)).astype("float32")[:, None]
    wav.write_bytes(tf.audio.encode_wav(tone, 8000).numpy())  # 8 kHz: resampled to the model's 16 kHz
    out = json.loads(run_cli("predict", "--model", str(tmp_path / "served"), "--image", str(image), "--audio", str(wav), "--compact"))
    assert out["class_name"] in ("a", "b", "c")
    assert out["image_present"] == 1.0 and out["audio_present"] == 1.0 and out["text_present"] == 0.0
    assert out["image_status"] == "ok" and out["text_status"] == "empty"
    assert abs(sum(out["probabilities"]) - 1.0) < 1e-5 and out["modality_weights"]["text"] == 0.0
    # a missing file was TensorFlow's NotFoundError with its traceback; now one line (the exit message)
    missing = cli_exit_message(capfd, "predict", "--model", str(tmp_path / "served"), "--image", str(tmp_path / "nope.png"))
    assert "error: image" in missing and "nope.png': no such file" in missing
    folder = cli_exit_message(capfd, "predict", "--model", str(tmp_path / "served"), "--image", str(tmp_path))
    assert f"error: image '{tmp_path}': a directory, not a file" in folder
    # serving_wav takes the file's bytes (it was sent the decoded waveform's float bytes: "undecodable")
    wav_out = json.loads(run_cli("predict", "--model", str(tmp_path / "served"), "--audio", str(wav), "--signature",
                                 "serving_wav", "--compact"))
    assert wav_out["audio_status"] == "ok" and wav_out["audio_present"] == 1.0
    # mistakes are one error line, no traceback: run in this process (a fresh one per case took ~10 s of
    # TensorFlow start-up each); an exception that escaped main() would fail pytest.raises(SystemExit)
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(wav.read_bytes()[:5000])  # a raw InvalidArgumentError traceback from DecodeWav
    import soundfile

    ogg_named = tmp_path / "ogg.wav"  # predicted (soundfile read it) while serving_wav said "undecodable"
    soundfile.write(ogg_named, tone, 8000, format="OGG")
    for args, expected in [
        (["predict", "--model", str(tmp_path / "served"), "--audio", str(truncated)],
         f"error: audio '{truncated}': cannot decode {truncated} as audio: truncated: the header announces"),
        (["predict", "--model", str(tmp_path / "served"), "--audio", str(ogg_named)],
         f"error: audio '{ogg_named}': cannot decode {ogg_named} as audio: not a WAV file: its bytes start with 'OggS'"),
        (["predict", "--model", str(tmp_path / "served"), "--text", "x", "--signature", "nope"],
         "error: signature 'nope' is not in this export. Signatures: serving_default, serving_numeric, serving_wav"),
        (["predict", "--model", str(tmp_path / "served"), "--text", "x", "--signature", "serving_numeric"],
         "error: --signature serving_numeric takes preprocessed arrays"),
        (["predict", "--model", str(tmp_path), "--text", "x"], "error: "),
        (["export", "--model", model_path, "--output", str(tmp_path / "served"), "--version", "1"], "error: "),
    ]:
        message = cli_exit_message(capfd, *args)
        assert expected in message, (args, message)
    run_cli("export", "--model", model_path, "--output", str(tmp_path / "served"), "--version", "1", "--overwrite")


def test_export_reports_a_missing_model_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_mm.cli", "export", "--model", str(tmp_path / "nope.keras"), "--output", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "is not a file" in result.stderr


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_train_then_evaluate_from_a_run_file(tmp_path, capsys):
    from keras_mm.cli import main

    run_file = tmp_path / "run.yaml"
    run_file.write_text(
        "model: {preset: tiny_concat}\n"
        f"data: {{manifest: {keras_mm.datasets.sample_manifest_path()}, test_split: test, class_names: {DIGITS}}}\n"
        "training: {epochs: 5, batch_size: 60}\n"
        "output: {dir: out}\n"
        "export: {tflite: out/model.tflite}\n"
    )
    main(["train", "--config", str(run_file), "--set", "training.epochs=1", "--verbose", "2"])
    printed = capsys.readouterr().out
    assert "Epoch 1/1" in printed and "Epoch 1/5" not in printed  # --set won
    out = tmp_path / "out"  # relative to the run file
    assert {"model.keras", "history.json", "run.yaml", "checkpoints", "report", "model.tflite"} <= set(os.listdir(out))
    assert {"report.json", "confusion_matrix.png", "training_curves.png"} <= set(os.listdir(out / "report"))
    trained = json.loads((out / "report" / "report.json").read_text())
    assert trained["class_names"] == DIGITS and "seven" in printed  # the table names the classes
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 1

    # evaluate reloads model.keras: the same numbers as right after training (a new model would differ)
    (out / "report" / "report.json").unlink()
    main(["evaluate", "--config", str(run_file)])
    assert json.loads((out / "report" / "report.json").read_text())["metrics"] == trained["metrics"]
    main(["evaluate", "--model", str(out / "model.keras"), "--manifest", keras_mm.datasets.sample_manifest_path(),
          "--split", "test", "--output", str(tmp_path / "again")])
    again = json.loads((tmp_path / "again" / "report" / "report.json").read_text())
    assert again["metrics"] == trained["metrics"] and again["class_names"] == DIGITS and again["split"] == "test"
    # another split, or the model's own folder, never overwrites the run's report/
    main(["evaluate", "--config", str(run_file), "--split", "val"])
    main(["evaluate", "--model", str(out / "model.keras"), "--manifest", keras_mm.datasets.sample_manifest_path(),
          "--split", "train"])
    assert json.loads((out / "report_val" / "report.json").read_text())["split"] == "val"
    assert json.loads((out / "report_train" / "report.json").read_text())["split"] == "train"
    assert json.loads((out / "report" / "report.json").read_text())["metrics"] == trained["metrics"]


def test_train_reports_a_bad_run_file_value_and_exits(tmp_path):
    from keras_mm.cli import main

    run_file = tmp_path / "run.yaml"
    run_file.write_text(f"data: {{manifest: {keras_mm.datasets.sample_manifest_path()}}}\ntraining: {{epochs: ten}}\n")
    with pytest.raises(SystemExit, match=r"^error: .*run.yaml: training.epochs must be a positive integer, got 'ten'\.$"):
        main(["train", "--config", str(run_file)])


def test_train_reports_an_encoder_argument_error_in_one_line(tmp_path, monkeypatch):
    from keras_mm.cli import main

    run_file = tmp_path / "run.yaml"
    run_file.write_text(f"data: {{manifest: {keras_mm.datasets.sample_manifest_path()}}}\n"
                        "model: {encoders: {text: lstm}}\ntraining: {epochs: 1}\n")
    monkeypatch.delenv("KERAS_MM_TRACEBACK", raising=False)
    # raised while the model is built (not when the file is read): it printed a 25-line traceback
    with pytest.raises(SystemExit, match=r"^error: encoder 'lstm' needs vocabulary=\[\.\.\.\].*\n\(set KERAS_MM_TRACEBACK=1"):
        main(["train", "--config", str(run_file)])


def test_check_lists_every_unusable_row_and_a_run_file_can_skip_them(tmp_path, capsys):
    import shutil

    from keras_mm.cli import main
    from keras_mm.data import Manifest
    from keras_mm.runfile import RunFile

    shutil.copytree(keras_mm.datasets.SAMPLE_DIR, tmp_path / "s")
    manifest = tmp_path / "s" / "manifest.csv"
    rows = Manifest(str(manifest)).rows
    (tmp_path / "s" / rows[3]["image"]).write_bytes(b"not an image")
    (tmp_path / "s" / rows[8]["audio"]).unlink()
    run_file = tmp_path / "run.yaml"
    run_file.write_text(f"model: {{preset: tiny_attention, num_classes: 10}}\ndata: {{manifest: {manifest}}}\n")
    with pytest.raises(SystemExit) as exited:
        main(["check", "--config", str(run_file)])
    out = capsys.readouterr().out
    assert exited.value.code == 1
    assert f"{manifest}, line 5: image='{rows[3]['image']}'" in out and "undecodable" in out
    assert f"{manifest}, line 10: audio='{rows[8]['audio']}'" in out and "is missing or unreadable" in out
    assert out.rstrip().endswith("unusable row(s) (data.on_error: skip drops them, logged)")
    # without a model files are loaded and decoded (not checked by a model's preprocessing), and the output says so
    with pytest.raises(SystemExit):
        main(["check", "--manifest", str(manifest)])
    out = capsys.readouterr().out
    assert "line 10: audio=" in out and "line 5: image=" in out and "does not decode: Unknown image file format" in out
    assert "not what only a model's preprocessing refuses" in out
    # the run file's data.on_error: skip drops them from the training data
    run = RunFile.load(str(run_file), overrides=["data.on_error=skip"])
    ds = run.dataset(keras_mm.build_model(run.model_config()), None)
    assert {5, 10} <= {line for line, _ in ds.manifest.skipped} and len(ds.manifest) < len(rows)
    main(["check", "--manifest", keras_mm.datasets.sample_manifest_path()])
    assert "every row is usable" in capsys.readouterr().out
    # with the classes read from the manifest (no num_classes) the missing file stopped the check at its row
    run_file.write_text(f"model: {{preset: tiny_attention}}\ndata: {{manifest: {manifest}}}\n")
    with pytest.raises(SystemExit) as exited:
        main(["check", "--config", str(run_file)])
    out = capsys.readouterr().out
    assert exited.value.code == 1 and "line 5: image=" in out and "line 10: audio=" in out


def test_train_stops_on_a_bad_row_or_a_misspelt_split_with_one_error_line(tmp_path, monkeypatch):
    import shutil

    from keras_mm.cli import main
    from keras_mm.data import Manifest

    monkeypatch.delenv("KERAS_MM_TRACEBACK", raising=False)
    shutil.copytree(keras_mm.datasets.SAMPLE_DIR, tmp_path / "s")
    manifest = tmp_path / "s" / "manifest.csv"
    first = Manifest(str(manifest), split="train").rows[0]
    (tmp_path / "s" / first["image"]).write_bytes(b"not an image")
    run_file = tmp_path / "run.yaml"
    run_file.write_text(f"model: {{preset: tiny_attention, num_classes: 10}}\ndata: {{manifest: {manifest}, test_split: test}}\n"
                        "training: {epochs: 1}\noutput: {dir: out}\n")
    # before training: a misspelt split (it surfaced only after training, when the report was written)
    with pytest.raises(SystemExit, match=r"^error: .*run.yaml: data.test_split='tst' is not a split of .*manifest.csv\. "
                                         r"Splits: test \(100 rows\), train \(200 rows\), val \(50 rows\)$"):
        main(["train", "--config", str(run_file), "--set", "data.test_split=tst"])
    assert not (tmp_path / "out").exists()
    # while training: a corrupt image (was TensorFlow's InvalidArgumentError with ~1,200 lines of traceback)
    with pytest.raises(SystemExit, match=rf"^error: .*manifest.csv, line 2: image='{first['image']}' .* undecodable .*"
                                         r"keras-mm check lists them all\)\n\(set KERAS_MM_TRACEBACK=1"):
        main(["train", "--config", str(run_file)])


def test_evaluate_scores_every_row_of_a_manifest_without_a_split_column(tmp_path):
    import csv

    from keras_mm.cli import main

    sample = keras_mm.datasets.sample_manifest_path()
    with open(sample, newline="") as f:
        rows = list(csv.DictReader(f))[:20]
    holdout = tmp_path / "holdout.csv"  # a hold-out set of its own: no split column (it asked for split 'test')
    with open(holdout, "w", newline="") as f:
        writer = csv.DictWriter(f, ["image", "text", "audio", "label"])
        writer.writeheader()
        root = os.path.dirname(sample)
        for row in rows:
            writer.writerow({"image": os.path.join(root, row["image"]), "text": row["text"],
                             "audio": os.path.join(root, row["audio"]), "label": row["label"]})
    model = keras_mm.build_model(preset="tiny_concat", num_classes=10)
    model.save(str(tmp_path / "m.keras"))
    main(["evaluate", "--model", str(tmp_path / "m.keras"), "--manifest", str(holdout)])
    report = json.loads((tmp_path / "report_all" / "report.json").read_text())
    assert report["split"] is None and sum(c["support"] for c in report["per_class"]) == 20
