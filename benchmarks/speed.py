"""Speed benchmarks, each reported as a ratio against a baseline measured in the same run.

Run: ``make bench`` (or ``python -m benchmarks.speed [--quick]``). Prints a table and writes
``benchmarks/results/speed.json``. Machines here are noisy: compare ratios, not absolute numbers.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mm  # noqa: E402


def timeit(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_mfcc(quick):
    import librosa

    clips = np.random.default_rng(0).normal(0, 0.1, (64, 16000)).astype("float32")
    layer = keras_mm.layers.MFCC()
    fn = tf.function(layer.call)
    ours = statistics.median(timeit(lambda: fn(clips).numpy(), 5 if quick else 15))
    ref = statistics.median(
        timeit(lambda: [librosa.feature.mfcc(y=c, sr=16000, n_mfcc=40, n_fft=512, hop_length=160, n_mels=64) for c in clips], 2 if quick else 5, 1)
    )
    return {"name": "MFCC layer (batch 64) vs librosa loop, 1 s clips", "ours_per_s": 64 / ours, "baseline_per_s": 64 / ref,
            "ratio": ref / ours, "target": ">= 5", "unit": "clips/s",
            "note": "OPENBLAS_CORETYPE as set by the environment (numpy/librosa)"}


def _hand_written(image_size, num_samples):
    """The same network as the zoo model below, written directly in Keras."""
    image = keras.Input((image_size, image_size, 3), name="image")
    audio = keras.Input((num_samples,), name="audio")
    x = keras.layers.Rescaling(1 / 255.0)(image)
    for f in (32, 64):
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    a = keras_mm.layers.MFCC()(audio)
    a = keras.layers.LayerNormalization()(a)
    for f in (32, 64):
        a = keras.layers.Conv1D(f, 5, padding="same", activation="relu")(a)
        a = keras.layers.MaxPooling1D(2, padding="same")(a)
    a = keras.layers.GlobalAveragePooling1D()(a)
    fused = keras.layers.Concatenate()([a, x])
    out = keras.layers.Dense(10, activation="softmax")(fused)
    return keras.Model({"image": image, "audio": audio}, out)


def bench_zoo_overhead(quick):
    size, samples, batch = 64, 16000, 32
    zoo = keras_mm.build_model(
        encoders={"image": {"name": "small_cnn", "image_size": size, "filters": [32, 64]},
                  "audio": {"name": "mfcc_cnn", "num_samples": samples, "filters": [32, 64]}},
        fusion="concat", num_classes=10,
    )
    hand = _hand_written(size, samples)
    assert zoo.count_params() == hand.count_params(), (zoo.count_params(), hand.count_params())
    rng = np.random.default_rng(0)
    x = {"image": rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"), "audio": rng.normal(0, 0.1, (batch, samples)).astype("float32")}
    xz = {**x, "image_present": np.ones(batch, "float32"), "audio_present": np.ones(batch, "float32")}
    y = rng.integers(0, 10, batch)
    for model in (zoo, hand):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    zoo.train_on_batch(xz, y)
    hand.train_on_batch(x, y)
    # many short interleaved rounds share the machine's noise between both models
    zoo_t, hand_t = [], []
    for _ in range(4 if quick else 8):
        zoo_t += timeit(lambda: zoo.train_on_batch(xz, y), 10, 1)
        hand_t += timeit(lambda: hand.train_on_batch(x, y), 10, 1)
    z, h = statistics.median(zoo_t), statistics.median(hand_t)
    return {"name": "train step: build_model vs the same net hand-written", "ours_per_s": batch / z, "baseline_per_s": batch / h,
            "ratio": h / z, "overhead_pct": (z / h - 1) * 100, "target": "overhead <= 3 %", "unit": "samples/s",
            "params": zoo.count_params()}


def bench_serving(quick):
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(
        encoders={"image": {"name": "mobilenet_v2", "image_size": 160},
                  "audio": {"name": "mfcc_cnn", "num_samples": 16000, "filters": [32, 64]}},
        fusion="attention", num_classes=10,
    )
    raw = model.preprocessor.example_raw(32)
    numeric = {k: v.numpy() for k, v in model.preprocessor.process_batch(raw).items()}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        keras_mm.export_saved_model(model, os.path.join(tmp, "m"))
        loaded = keras_mm.serving.load_saved_model(os.path.join(tmp, "m"))
        raw_fn = loaded.signatures["serving_default"]
        num_fn = loaded.signatures["serving_numeric"]
        raw_in = {"image": tf.constant(list(raw["image"])), "audio": tf.constant(raw["audio"])}
        num_in = {k: tf.constant(v) for k, v in numeric.items()}
        repeats = 5 if quick else 15
        raw_t = statistics.median(timeit(lambda: raw_fn(**raw_in), repeats))
        num_t = statistics.median(timeit(lambda: num_fn(**num_in), repeats))
        results.append({"name": "serving, batch 32: raw-input signature vs numeric core", "ours_per_s": 32 / raw_t,
                        "baseline_per_s": 32 / num_t, "ratio": num_t / raw_t, "target": ">= 0.9", "unit": "samples/s"})
        one_raw = {k: v[:1] for k, v in raw_in.items()}
        lat = timeit(lambda: raw_fn(**one_raw), 20 if quick else 60)
        lite_rows = {}
        for quant in (None, "dynamic"):
            path = os.path.join(tmp, f"m_{quant}.tflite")
            keras_mm.export_tflite(model, path, quantization=quant)
            lite = keras_mm.export.TFLiteModel(path)
            lite_t = statistics.median(timeit(lambda: lite.predict(numeric), repeats))
            one = {k: v[:1] for k, v in numeric.items()}
            lite_lat = timeit(lambda: lite.predict(one), 20 if quick else 60)
            lite_rows[quant] = (lite_t, lite_lat)
            results.append({"name": f"TFLite {quant or 'float32'} vs SavedModel numeric, batch 32", "ours_per_s": 32 / lite_t,
                            "baseline_per_s": 32 / num_t, "ratio": num_t / lite_t, "target": ">= 2" if quant is None else "measure",
                            "unit": "samples/s", "batch1_p50_ms": 1000 * np.percentile(lite_lat, 50), "batch1_p99_ms": 1000 * np.percentile(lite_lat, 99)})
        results.append({"name": "SavedModel raw signature, batch 1 latency", "batch1_p50_ms": 1000 * np.percentile(lat, 50),
                        "batch1_p99_ms": 1000 * np.percentile(lat, 99), "unit": "ms"})
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "speed.json"))
    args = parser.parse_args(argv)
    rows = [bench_mfcc(args.quick), bench_zoo_overhead(args.quick), *bench_serving(args.quick)]
    print(f"\n{'benchmark':<58}{'ours':>12}{'baseline':>12}{'ratio':>8}  target")
    for r in rows:
        if "ratio" in r:
            print(f"{r['name']:<58}{r['ours_per_s']:>12.1f}{r['baseline_per_s']:>12.1f}{r['ratio']:>8.2f}  {r['target']}"
                  + (f"  (overhead {r['overhead_pct']:+.1f} %)" if "overhead_pct" in r else ""))
        if "batch1_p50_ms" in r:
            print(f"{'  batch-1 latency p50 / p99 (ms)':<58}{r['batch1_p50_ms']:>12.2f}{r['batch1_p99_ms']:>12.2f}")
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
               "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine, "results": rows}, f, indent=2, default=float)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
