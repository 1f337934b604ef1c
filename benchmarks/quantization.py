"""TFLite quantization benchmark on AV-Digits: test accuracy and argmax agreement with Keras per export mode.

Run: ``python -m benchmarks.quantization``. Prints a table and writes
``benchmarks/results/quantization.json``. It measures accuracy, not speed.

Protocol: ``benchmarks.accuracy``'s training of the concat-fusion model
(small_cnn image branch at 32 px + mfcc_cnn audio branch, modality dropout
0.3, Adam 2e-3, batch 64, best validation epoch) on
``keras_mm.datasets.av_digits(seed=0)``; the trained model is exported with
``keras_mm.export_tflite`` in each mode and every export is scored on the whole
test split (voices unseen in training). int8 is calibrated on
``--calibration-samples`` samples of the shuffled *training* split
(``representative_data=train_ds``); the row "int8, MFCC quantized too" shows
what keeping the MFCC front-end in float32 (the default) is worth.
"""

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mm  # noqa: E402
from keras_mm.export import TFLiteModel  # noqa: E402

from benchmarks.accuracy import AUDIO, IMAGE, fusion_spec, train_and_test  # noqa: E402
from benchmarks.common import write_results  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results", "quantization.json")
# (label, export_tflite keyword arguments); None: the Keras model itself
MODES = [
    ("keras float32", None),
    ("tflite float32", {"quantization": None}),
    ("tflite float16", {"quantization": "float16"}),
    ("tflite dynamic", {"quantization": "dynamic"}),
    ("tflite int8", {"quantization": "int8"}),
    ("tflite int8, MFCC quantized too", {"quantization": "int8", "float_mfcc": False}),
]


def predictions(predict, test):
    """Predicted class ids and true labels over the whole test dataset."""
    predicted, labels = [], []
    for x, y in test:
        predicted.append(np.argmax(predict({k: v.numpy() for k, v in x.items()}), axis=-1))
        labels.append(np.asarray(y))
    return np.concatenate(predicted), np.concatenate(labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration-samples", type=int, default=256)
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    started = time.time()

    data = keras_mm.datasets.av_digits(seed=0)
    encoders = {"image": IMAGE, "audio": AUDIO}
    model, test, run = train_and_test(data, encoders, fusion_spec("concat"), args.seed, args.epochs, 0.3)
    train = data.dataset("train", model=model, features={k: k for k in encoders}, batch_size=64, shuffle=True,
                         seed=args.seed, cache=True)
    print(f"trained: {run}")

    rows, reference = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for label, options in MODES:
            if options is None:
                predict, size = (lambda x: model.predict_on_batch(x)), None
            else:
                path = os.path.join(tmp, label.replace(" ", "_").replace(",", "") + ".tflite")
                if options["quantization"] == "int8":
                    options = {**options, "representative_data": train, "calibration_samples": args.calibration_samples}
                size = keras_mm.export_tflite(model, path, **options)
                lite = TFLiteModel(path)
                predict = lambda x, lite=lite: lite.predict(x)["probabilities"]  # noqa: E731
            predicted, labels = predictions(predict, test)
            reference = predicted if reference is None else reference
            rows[label] = {"test_accuracy": float((predicted == labels).mean()),
                           "argmax_agreement_with_keras": float((predicted == reference).mean()),
                           "file_bytes": size}
            print(f"  {label:34} accuracy {rows[label]['test_accuracy']:.4f}", flush=True)

    base = rows["keras float32"]["test_accuracy"]
    print()
    print(f"AV-Digits test split ({len(labels)} samples), concat fusion, seed {args.seed}; runtime {lite.runtime}")
    print(f"{'export':34} {'accuracy':>9} {'vs keras':>9} {'agreement':>10} {'size':>9}")
    for label, row in rows.items():
        size = f"{row['file_bytes'] / 1e6:.2f} MB" if row["file_bytes"] else "-"
        print(f"{label:34} {row['test_accuracy']:>9.4f} {100 * (row['test_accuracy'] - base):>+8.2f}p "
              f"{row['argmax_agreement_with_keras']:>10.4f} {size:>9}")
    results = {"rows": rows, "training": run, "test_samples": int(len(labels)), "runtime": lite.runtime,
               "calibration_samples": args.calibration_samples,
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "tensorflow": __import__("tensorflow").__version__, "keras": keras.__version__},
               "seconds": round(time.time() - started, 1)}
    write_results(args.output, results)
    return results


if __name__ == "__main__":
    main()
