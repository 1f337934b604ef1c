"""Parameter count of every registered component, on the tiny preset and at default sizes.

Run: ``python -m benchmarks.parameter_counts`` (prints a table, writes
``benchmarks/results/parameter_counts.json``). Each fusion and head is counted
inside the ``tiny_concat`` preset (image small_cnn + text BERT-tiny + audio
mfcc_cnn, 3 classes) with its ``example_config``; each encoder alone with the
tiny preset's settings for its modality, or its ``example_config``.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_mm  # noqa: E402
from keras_mm.presets import preset_config  # noqa: E402
from keras_mm.registry import ENCODERS, FUSIONS, HEADS  # noqa: E402

from benchmarks.common import write_results  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results", "parameter_counts.json")
DEFAULT_SIZE = {  # real-size settings (random init: counts do not need the weights)
    "mobilenet_v2": {"image_size": 224}, "vgg16": {"image_size": 224}, "small_cnn": {},
    "mfcc_cnn": {}, "mfcc_gru": {}, "lstm": {"vocabulary": [f"w{i}" for i in range(20000)]},
    "bert": {"vocabulary": [f"w{i}" for i in range(30522)], "num_layers": 6, "num_heads": 12, "hidden_dim": 384,
             "intermediate_dim": 1536},  # the all-MiniLM-L6-v2 architecture
    "precomputed": {"dim": 512},  # e.g. CLIP ViT-B/32 embeddings
}
# encoders not listed (e.g. tfhub, whose size is the loaded model's) are counted with their example_config


def count(layer):
    return int(sum(int(w.shape.num_elements()) for w in layer.weights))


def measure():
    tiny = preset_config("tiny_concat", num_classes=3)
    tiny_by_modality = {ENCODERS.get(spec["name"]).modality: spec for spec in tiny["encoders"].values()}
    rows = []
    for name in ENCODERS.names():
        cls = ENCODERS.get(name)
        spec = tiny_by_modality.get(cls.modality, {})
        kwargs = {k: v for k, v in spec.items() if k != "name"} if spec.get("name") == name else dict(cls.example_config)
        tiny_encoder = cls(**kwargs)
        tiny_encoder.build()
        full = cls(**DEFAULT_SIZE.get(name, dict(cls.example_config)))
        full.build()
        rows.append({"kind": "encoder", "name": name, "tiny": count(tiny_encoder), "default_size": count(full),
                     "tiny_config": kwargs})
    for name in FUSIONS.names():
        config = {**tiny, "fusion": {"name": name, **FUSIONS.get(name).example_config}}
        model = keras_mm.build_model(config=config)
        rows.append({"kind": "fusion", "name": name, "tiny": count(model.fusion), "model_total": model.count_params(),
                     "tiny_config": FUSIONS.get(name).example_config})
    for name in HEADS.names():
        cls = HEADS.get(name)
        head = {"name": name, **{k: v for k, v in cls.example_config.items() if k != "num_classes"}}
        model = keras_mm.build_model(config={**tiny, "head": head, "num_classes": cls.example_config.get("num_classes")})
        rows.append({"kind": "head", "name": name, "tiny": count(model.head), "model_total": model.count_params(),
                     "tiny_config": cls.example_config})
    return rows


def table(rows):
    lines = [f"{'kind':8} {'component':16} {'tiny preset':>12} {'model total':>12} {'default size':>13}"]
    for r in rows:
        total, full = (f"{r[k]:,}" if k in r else "" for k in ("model_total", "default_size"))
        lines.append(f"{r['kind']:8} {r['name']:16} {r['tiny']:>12,} {total:>12} {full:>13}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    rows = measure()
    print(table(rows))
    write_results(args.output, {"preset": "tiny_concat", "rows": rows})


if __name__ == "__main__":
    main()
