"""The ``keras-mm`` command line: export, predict, list, demo.

Examples:
    keras-mm list
    keras-mm export --model saved_models/demo/model.keras --output saved_models/digits
    keras-mm predict --model saved_models/digits --image digit.png --text "seven" --audio seven.wav
"""

import argparse
import json
import os
import sys


def _cmd_list(args):
    import keras_mm

    for modality in ("image", "text", "audio"):
        print(f"encoders ({modality}): {', '.join(keras_mm.list_encoders(modality))}")
    print(f"fusions: {', '.join(keras_mm.list_fusions())}")
    print(f"heads: {', '.join(keras_mm.list_heads())}")


def _cmd_export(args):
    import keras

    import keras_mm

    if not os.path.isfile(args.model):
        sys.exit(f"error: --model {args.model!r} is not a file (expected a .keras model saved by keras_mm)")
    model = keras.models.load_model(args.model, safe_mode=True)
    class_names = args.class_names.split(",") if args.class_names else None
    version_dir = keras_mm.export_saved_model(
        model, args.output, version=args.version, class_names=class_names,
        warmup_samples=model.preprocessor.example_raw(1) if args.warmup else None,
    )
    print(version_dir)


def _read_inputs(args, metadata):
    from keras_mm.data import load_audio_file

    given = {"image": args.image, "text": args.text, "audio": args.audio}
    samples = {}
    for feature, modality in metadata["features"].items():
        value = given.get(feature)
        if value is None and modality in given and list(metadata["features"].values()).count(modality) == 1:
            value = given[modality]
        if value is None:
            samples[feature] = [b"" if modality == "image" else "" if modality == "text" else [0.0]]
        elif modality == "image":
            with open(value, "rb") as f:
                samples[feature] = [f.read()]
        elif modality == "audio":
            samples[feature] = [load_audio_file(value, metadata["sample_rates"].get(feature, 16000))]
        else:
            samples[feature] = [value]
    return samples


def _cmd_predict(args):
    import numpy as np

    from keras_mm.export import read_export_metadata
    from keras_mm.export.serving import call_signature, load_saved_model

    metadata = read_export_metadata(args.model)
    samples = _read_inputs(args, metadata)
    outputs = call_signature(load_saved_model(args.model), samples, args.signature)
    result = {k: np.asarray(v)[0].tolist() for k, v in outputs.items()}
    if metadata.get("class_names") and "class_id" in result:
        result["class_name"] = metadata["class_names"][int(result["class_id"])]
    print(json.dumps(result, indent=None if args.compact else 2))


def _cmd_demo(args):
    from keras_mm import demo

    demo.run(args.output, args.epochs)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras-mm", description="keras_mm: multimodal Keras model zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list registered encoders, fusions and heads").set_defaults(fn=_cmd_list)

    export = sub.add_parser("export", help="export a .keras model as a TF Serving SavedModel (raw inputs)")
    export.add_argument("--model", required=True, help="path of a .keras model built with keras_mm")
    export.add_argument("--output", required=True, help="base directory, e.g. saved_models/<name>")
    export.add_argument("--version", type=int, default=None, help="version number (default: next)")
    export.add_argument("--class-names", default=None, help="comma-separated class names stored with the export")
    export.add_argument("--warmup", action="store_true", help="write TF Serving warm-up requests")
    export.set_defaults(fn=_cmd_export)

    predict = sub.add_parser("predict", help="call an exported SavedModel on files/text (missing inputs are allowed)")
    predict.add_argument("--model", required=True, help="saved_models/<name> or a version directory")
    predict.add_argument("--image", help="image file (JPEG/PNG/GIF/BMP)")
    predict.add_argument("--text", help="text")
    predict.add_argument("--audio", help="audio file (WAV/FLAC/OGG), resampled to the model's rate")
    predict.add_argument("--signature", default="serving_default")
    predict.add_argument("--compact", action="store_true", help="one-line JSON")
    predict.set_defaults(fn=_cmd_predict)

    demo = sub.add_parser("demo", help="train, evaluate and export a model on the bundled sample data")
    demo.add_argument("--output", default="saved_models/demo")
    demo.add_argument("--epochs", type=int, default=25)
    demo.set_defaults(fn=_cmd_demo)

    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
