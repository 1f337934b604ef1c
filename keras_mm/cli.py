"""The ``keras-mm`` command line: train, evaluate, check, export, predict, list, demo.

Examples:
    keras-mm list
    keras-mm check --config examples/run.yaml
    keras-mm train --config examples/run.yaml
    keras-mm evaluate --config examples/run.yaml
    keras-mm evaluate --model runs/digits/model.keras --manifest data/manifest.csv --split test
    keras-mm export --model saved_models/demo/model.keras --output saved_models/digits
    keras-mm predict --model saved_models/digits --image digit.png --text "seven" --audio seven.wav
"""

import argparse
import json
import os
import re
import sys


def _cmd_list(args):
    import keras_mm

    for modality in keras_mm.list_modalities():
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
    try:
        version_dir = keras_mm.export_saved_model(
            model, args.output, version=args.version, class_names=class_names,
            warmup_samples=model.preprocessor.example_raw(1) if args.warmup else None, overwrite=args.overwrite,
        )
    except ValueError as error:
        _exit_with(error)
    print(version_dir)


def _read_inputs(args, metadata, encoded_audio=False):
    """Raw samples for an export's features: ``--input feature=value`` or the ``--image/--text/--audio`` shorthands.

    A feature's modality loads the value (a file for image/audio, the text
    itself for text); a feature given nothing is sent as missing. With
    ``encoded_audio`` (the ``serving_wav`` signature) audio files are sent as
    their bytes, as that signature takes them.
    """
    from keras_mm.modalities import get_modality

    features = metadata["features"]
    given = {}
    for item in args.input or []:
        feature, sep, value = item.partition("=")
        if not sep or feature not in features:
            sys.exit(f"error: --input {item!r}: expected FEATURE=VALUE with FEATURE one of {', '.join(features)}")
        given[feature] = value
    shorthands = {"image": args.image, "text": args.text, "audio": args.audio}
    samples = {}
    for feature, modality_name in features.items():
        value = given.get(feature, shorthands.get(feature))
        if value is None and list(features.values()).count(modality_name) == 1:
            value = shorthands.get(modality_name)
        modality = get_modality(modality_name)
        options = modality.load_options(sample_rate=metadata.get("sample_rates", {}).get(feature),
                                        num_samples=metadata.get("num_samples", {}).get(feature))
        if modality.reads_files and not modality.is_empty_cell(value) and not os.path.isfile(value):
            sys.exit(f"error: {feature} {value!r}: " + ("a directory, not a file" if os.path.isdir(value) else "no such file"))
        try:
            if encoded_audio and modality_name == "audio":
                samples[feature] = [b"" if modality.is_empty_cell(value) else open(value, "rb").read()]
                continue
            samples[feature] = [modality.load_cell(value, os.path.abspath, **options)]
        except Exception as error:  # noqa: BLE001 -- a bad file's ValueError or TensorFlow error, as one line
            sys.exit(f"error: {feature} {value!r}: {_one_line(error)}")
    return samples


def _json_value(value):
    """One sample's output as JSON data (string outputs such as statuses and class names are decoded)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value.tolist()


def _cmd_predict(args):
    import numpy as np

    from keras_mm.export import read_export_metadata
    from keras_mm.export.serving import call_signature, load_saved_model

    if args.signature == "serving_numeric":
        sys.exit("error: --signature serving_numeric takes preprocessed arrays, not files or text; "
                 "use serving_default (or serving_wav for WAV bytes)")
    try:
        metadata = read_export_metadata(args.model)
        samples = _read_inputs(args, metadata, encoded_audio=args.signature == "serving_wav")
        outputs = call_signature(load_saved_model(args.model), samples, args.signature)
    except ValueError as error:
        _exit_with(error)
    result = {k: _json_value(np.asarray(v)[0]) for k, v in outputs.items()}
    if metadata.get("class_names") and "class_id" in result and "class_name" not in result:
        result["class_name"] = metadata["class_names"][int(result["class_id"])]
    if isinstance(result.get("modality_weights"), list) and len(result["modality_weights"]) == len(metadata["features"]):
        # named by feature (the export's feature order): a bare list left the reader guessing which is which
        result["modality_weights"] = dict(zip(metadata["features"], result["modality_weights"]))
    print(json.dumps(result, indent=None if args.compact else 2, sort_keys=True))  # the same order on every call


def _run_file(args, model_required=True):
    """The run file of ``--config`` (with ``--set`` overrides), or one made of ``evaluate``'s ``--manifest`` options."""
    from keras_mm.runfile import RunFile

    if args.config:
        if getattr(args, "manifest", None) or getattr(args, "output", None):
            sys.exit("error: --manifest and --output go without --config; with it, use --set data.manifest=... or output.dir=...")
        return RunFile.load(args.config, overrides=args.set or ())
    if not getattr(args, "manifest", None) or (model_required and not getattr(args, "model", None)):
        sys.exit("error: pass --config RUN_FILE, or --model MODEL.keras with --manifest MANIFEST"
                 + ("" if model_required else ", or --manifest MANIFEST alone"))
    from keras_mm.data.manifest import split_counts

    # a manifest without a split column (a hold-out set of its own) is scored whole
    split = getattr(args, "split", None) or ("test" if split_counts(args.manifest) is not None else None)
    document = {"data": {"manifest": args.manifest, "test_split": split, "label": args.label},
                "training": {"batch_size": getattr(args, "batch_size", 32)}}
    if getattr(args, "model", None) or getattr(args, "output", None):
        document["output"] = {"dir": getattr(args, "output", None) or os.path.dirname(os.path.abspath(args.model))}
    return RunFile.from_dict(document, source="command line")


def _one_line(error):
    """A ValueError's text, or a TensorFlow error's message without its ``{{function_node ...}}`` prefix and op trace."""
    import tensorflow as tf

    from keras_mm.tf_logs import error_reason

    if isinstance(error, tf.errors.OpError):
        return error_reason(error)
    if isinstance(error, ValueError):
        return str(error)
    raise error


def _exit_with(error):
    """A user's mistake as one line, no traceback (keras_mm's ValueErrors name the field and what it must be)."""
    from keras_mm.runfile import RunFileError

    if os.environ.get("KERAS_MM_TRACEBACK"):
        raise error
    hint = "" if isinstance(error, RunFileError) else "\n(set KERAS_MM_TRACEBACK=1 to see where it was raised)"
    sys.exit(f"error: {error}{hint}")


def _input_pipeline_error(error):
    """The one-line message of a TensorFlow error raised by a bad manifest row in the input pipeline, else ``None``.

    A row that fails while the dataset is iterated surfaces as TensorFlow's
    ``InvalidArgumentError`` wrapping keras_mm's ``ValueError`` (which names the
    manifest line), with the Python traceback of the retry appended.
    """
    import re

    if not type(error).__module__.startswith("tensorflow") or not hasattr(error, "message"):
        return None
    found = re.search(r"ValueError: (.+)", error.message)
    return found.group(1).strip() if found else None


def _cmd_train(args):
    from keras_mm import runfile

    try:
        runfile.run_training(_run_file(args), verbose=_verbosity(args.verbose))
    except ValueError as error:  # RunFileError is one; so are the encoders' argument errors raised while building
        _exit_with(error)
    except Exception as error:  # a bad manifest row found while training: one line too
        message = _input_pipeline_error(error)
        if message is None:
            raise
        _exit_with(ValueError(message + " (data.on_error: skip drops such rows; keras-mm check lists them all)"))


def _cmd_evaluate(args):
    import keras

    from keras_mm import runfile

    try:
        run = _run_file(args)
        model = None
        if args.model:
            if not os.path.isfile(args.model):
                sys.exit(f"error: --model {args.model!r} is not a file (expected a .keras model saved by keras_mm)")
            model = keras.models.load_model(args.model, safe_mode=True)
        report_dir = None
        if not args.config and not args.output:  # the model's own folder: keep a run's report/ as it is
            report_dir = os.path.join(run.output.dir, f"report_{run.data.test_split or 'all'}")
        runfile.run_evaluation(run, model, split=args.split, report_dir=report_dir)
    except ValueError as error:
        _exit_with(error)
    except Exception as error:
        message = _input_pipeline_error(error)
        if message is None:
            raise
        _exit_with(ValueError(message + " (keras-mm check lists every such row)"))


def _cmd_check(args):
    import keras

    from keras_mm import runfile

    try:
        run = _run_file(args, model_required=False)
        model = None
        if args.model:
            if not os.path.isfile(args.model):
                sys.exit(f"error: --model {args.model!r} is not a file (expected a .keras model saved by keras_mm)")
            model = keras.models.load_model(args.model, safe_mode=True)
        problems = runfile.run_check(run, model)
    except ValueError as error:
        _exit_with(error)
    for line, problem in problems:
        print(f"{run.data.manifest}, line {line}: {problem}")
    print(f"{len(problems)} unusable row(s)" + (" (data.on_error: skip drops them, logged)" if problems else ": every row is usable"))
    if model is None and not run.model:
        print("(checked: labels, files exist, load and decode; not what only a model's preprocessing refuses, e.g. "
              "silent or NaN audio: pass --model or a run file)")
    if problems:
        sys.exit(1)


def _verbosity(value):
    return value if value == "auto" else int(value)


def _cmd_demo(args):
    from keras_mm import demo

    demo.run(args.output, args.epochs)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras-mm", description="keras_mm: multimodal Keras model zoo")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list registered encoders, fusions and heads").set_defaults(fn=_cmd_list)

    train = sub.add_parser("train", help="train, evaluate and export a model as a YAML run file says (examples/run.yaml)")
    train.add_argument("--config", required=True, help="the run file (YAML): model, data, training, output, export")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override a run-file value, e.g. --set training.epochs=1; repeatable")
    train.add_argument("--verbose", default="auto", choices=["auto", "0", "1", "2"],
                       help="auto: progress bar on a terminal, one line per epoch otherwise")
    train.set_defaults(fn=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="score a trained model on a manifest split: table, report.json, plots")
    evaluate.add_argument("--config", help="the run file used for training (its output.dir holds model.keras)")
    evaluate.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a run-file value")
    evaluate.add_argument("--model", help="a .keras model (default: model.keras in the run's output.dir)")
    evaluate.add_argument("--manifest", help="CSV/JSONL manifest (without --config)")
    evaluate.add_argument("--split", help="split to score (default: data.test_split, or without --config 'test', "
                          "or every row of a manifest without a split column)")
    evaluate.add_argument("--label", default="label", help="label column (without --config)")
    evaluate.add_argument("--batch-size", type=int, default=32, help="batch size (without --config)")
    evaluate.add_argument("--output", help="folder for report/ (without --config; default: report_<split>/ in the model's folder)")
    evaluate.set_defaults(fn=_cmd_evaluate)

    check = sub.add_parser("check", help="list every unusable row of a manifest (missing, unreadable or undecodable files, bad labels)")
    check.add_argument("--config", help="a run file: its manifest, checked with its model's preprocessing")
    check.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a run-file value")
    check.add_argument("--model", help="a .keras model whose preprocessing is used (default: the run file's model)")
    check.add_argument("--manifest", help="CSV/JSONL manifest (without --config; without --model files are loaded and decoded, not checked by a model's preprocessing)")
    check.add_argument("--label", default="label", help="label column (without --config)")
    check.set_defaults(fn=_cmd_check)

    export = sub.add_parser("export", help="export a .keras model as a TF Serving SavedModel (raw inputs)")
    export.add_argument("--model", required=True, help="path of a .keras model built with keras_mm")
    export.add_argument("--output", required=True, help="base directory, e.g. saved_models/<name>")
    export.add_argument("--version", type=int, default=None, help="version number (default: next)")
    export.add_argument("--class-names", default=None, help="comma-separated class names stored with the export")
    export.add_argument("--warmup", action="store_true", help="write TF Serving warm-up requests")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --version")
    export.set_defaults(fn=_cmd_export)

    predict = sub.add_parser("predict", help="call an exported SavedModel on files/text (missing inputs are allowed)")
    predict.add_argument("--model", required=True, help="saved_models/<name> or a version directory")
    predict.add_argument("--image", help="image file (JPEG/PNG/GIF/BMP)")
    predict.add_argument("--text", help="text")
    predict.add_argument("--audio", help="audio file (WAV, FLAC, OGG, MP3, AIFF), resampled to the model's rate")
    predict.add_argument("--input", action="append", metavar="FEATURE=VALUE",
                         help="a feature's value by name (file path, or the text itself); repeatable")
    predict.add_argument("--signature", default="serving_default")
    predict.add_argument("--compact", action="store_true", help="one-line JSON")
    predict.set_defaults(fn=_cmd_predict)

    demo = sub.add_parser("demo", help="train, evaluate and export a model on the bundled sample data")
    demo.add_argument("--output", default="saved_models/demo")
    demo.add_argument("--epochs", type=int, default=None, help="default: keras_mm.demo.EPOCHS, as `make demo`")
    demo.set_defaults(fn=_cmd_demo)

    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
