"""benchmarks/gpu.py: skips with a reason without a GPU, and its measurements run (tiny preset)."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmark(tmp_path, *args, env=None):
    out = tmp_path / "gpu.json"
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", *args, "--output", str(out)], cwd=REPO, capture_output=True, text=True,
        timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return json.loads(out.read_text()), process.stdout


def check_rows(result, parity_atol):
    rows = {r["name"]: r for r in result["results"]}
    assert not [r for r in rows.values() if "error" in r], [r for r in rows.values() if "error" in r]
    steps = [r for r in rows.values() if "policy" in r]
    assert {(r["policy"], r["jit_compile"]) for r in steps} == {(p, j) for p in ("float32", "mixed_float16") for j in (False, True)}
    assert all(r["samples_per_s"] > 0 for r in steps)
    mirrored = next(r for r in rows.values() if "replicas" in r)
    assert mirrored["replicas"] == 2 and len(mirrored["losses_single"]) == 3
    assert mirrored["loss_max_abs_diff"] <= parity_atol and mirrored["weights_max_abs_diff"] <= parity_atol
    assert mirrored["losses_single"][-1] < mirrored["losses_single"][0]  # the steps really train
    pipeline = next(r for r in rows.values() if "uncached_per_s" in r)
    assert pipeline["ours_per_s"] > 0 and pipeline["ratio_vs_fastest_step"] > 0


def test_without_a_gpu_it_exits_0_and_says_why(tmp_path):
    result, stdout = run_benchmark(tmp_path, "--tiny", env={"CUDA_VISIBLE_DEVICES": "-1"})
    assert result["skipped"] is True and "no GPU visible" in result["reason"]
    assert f"GPU benchmark skipped: {result['reason']}" in stdout


@pytest.mark.slow
def test_every_measurement_runs_on_two_logical_cpus(tmp_path):
    result, stdout = run_benchmark(tmp_path, "--cpu-smoke-test", env={"CUDA_VISIBLE_DEVICES": "-1"})
    assert result["skipped"] is False and result["preset"] == "tiny_attention" and "smoke test" in result["machine"]["device"]
    check_rows(result, parity_atol=1e-5)
    assert "train step mixed_float16 + XLA" in stdout


@pytest.mark.skipif(not tf.config.list_physical_devices("GPU"), reason="needs a GPU")
def test_tiny_configuration_on_the_gpu(tmp_path):
    result, _ = run_benchmark(tmp_path, "--tiny")
    assert result["skipped"] is False and "gpu" in result["machine"]
    check_rows(result, parity_atol=1e-4)  # GPU kernels are not bit-deterministic across batch splits
