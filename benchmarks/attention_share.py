"""Attention fusion's ``uniform_share``: test accuracy for several shares, the fusion benchmark's protocol.

Run: ``python -m benchmarks.attention_share [--datasets av_digits openclipart] [--shares 0 0.2 0.5]``.
Every run is :func:`benchmarks.fusion.run_one` (keras_mm's defaults, ``balance="auto"``, early stopping on
validation accuracy) with ``fusion={"name": "attention", "uniform_share": s}``. Prints a table and writes
``benchmarks/results/fusion_attention_uniform_share.json``; mean ± sample std over seeds.
"""

import argparse
import os
import time

from benchmarks import fusion as F
from benchmarks.common import summarise, write_results

RESULTS = os.path.join(os.path.dirname(__file__), "results", "fusion_attention_uniform_share.json")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["av_digits", "openclipart"], choices=sorted(F.DATASETS))
    parser.add_argument("--shares", nargs="+", type=float, default=[0.0, 0.2, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    results = {"protocol": "benchmarks.fusion.run_one, balance='auto'", "date": time.strftime("%Y-%m-%d"), "datasets": {}}
    for name in args.datasets:
        data, encoders, num_classes = F.DATASETS[name]()
        rows = results["datasets"][name] = {}
        for share in args.shares:
            fusion = {"name": "attention", "uniform_share": share}
            runs = [F.run_one(data, encoders, num_classes, fusion, "auto", seed, args.epochs) for seed in args.seeds]
            rows[str(share)] = summarise(runs)
            print(f"{name:12s} uniform_share={share:<4} {rows[str(share)]['mean']:.3f} ± {rows[str(share)]['std']:.3f}", flush=True)
    write_results(args.output, results)


if __name__ == "__main__":
    main()
