"""Helpers shared by the benchmark scripts."""

import json
import os

import numpy as np


def summarise(runs, key="test_accuracy"):
    """``{"mean", "std" (sample std; 0 for one run), "runs"}`` of ``run[key]`` over seeds."""
    values = np.array([r[key] for r in runs], dtype="float64")
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0, "runs": runs}


def write_results(path, results, **json_kwargs):
    """Write ``results`` as JSON (creating the folder) and say where."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1, **json_kwargs)
    print(f"wrote {path}")
