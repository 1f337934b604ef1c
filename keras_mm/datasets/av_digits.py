"""AV-Digits: an audio-visual digits benchmark built offline from real data (in the spirit of AV-MNIST).

Images are the 1,797 real handwritten digit scans bundled with scikit-learn
(``load_digits``). Each is paired, by label, with a spoken digit: real
recordings of five voices from the Debian asterisk sound packages
(en/fr/es/it/ru) plus espeak-ng synthesis (many languages, variants, speeds
and pitches). Both modalities are degraded (image noise and occlusion; audio
noise, gain and time shift) so that neither alone solves the task. Voices are
disjoint between the train, validation and test splits, and everything is
deterministic from ``seed``. The build is cached on disk (PNG + WAV files and
a ``manifest.csv`` that :func:`keras_mm.data.from_manifest` reads).
"""

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import keras
import numpy as np

from keras_mm.datasets.built_manifest import SPLITS, ManifestSplits

#: Debian package -> asterisk voice directory (one real speaker each).
RECORDED_VOICES = {
    "asterisk-core-sounds-en-wav": "en_US_f_Allison",
    "asterisk-core-sounds-fr-wav": "fr_CA_f_June",
    "asterisk-core-sounds-es-wav": "es_MX_f_Allison",
    "asterisk-core-sounds-it-wav": "it_IT_m_Carlo",
    "asterisk-core-sounds-ru-wav": "ru_RU_f_IvrvoiceRU",
}
SYNTHETIC_LANGUAGES = ("en", "en-us", "fr", "es", "it", "ru", "de")  # the recorded languages (+ German)
SYNTHETIC_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_FORMAT_VERSION = 1


def default_cache_dir():
    """``$KERAS_MM_CACHE`` or ``~/.cache/keras_mm``."""
    return os.environ.get("KERAS_MM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "keras_mm")


def _sound_roots(sounds_dir):
    roots = [sounds_dir] if sounds_dir else []
    if os.environ.get("KERAS_MM_SOUNDS_DIR"):
        roots.append(os.environ["KERAS_MM_SOUNDS_DIR"])
    # `make data` unpacks the packages here (dpkg -x, nothing installed system-wide)
    repo_data = os.path.join(os.path.dirname(__file__), "..", "..", ".data", "root", "usr", "share", "asterisk", "sounds")
    roots += [os.path.normpath(repo_data), "/usr/share/asterisk/sounds"]
    return roots


def find_recorded_voices(sounds_dir=None):
    """``{voice_dir_name: path}`` of the asterisk voices found, or a clear error naming the missing packages.

    Example:
        >>> from keras_mm.datasets.av_digits import find_recorded_voices
        >>> sorted(find_recorded_voices())[:2]  # after `make data`
        ['en_US_f_Allison', 'es_MX_f_Allison']
    """
    found, missing = {}, []
    for package, voice in RECORDED_VOICES.items():
        for root in _sound_roots(sounds_dir):
            path = os.path.join(root, voice, "digits")
            if all(os.path.isfile(os.path.join(path, f"{d}.wav")) for d in range(10)):
                found[voice] = path
                break
        else:
            missing.append(package)
    if missing:
        raise FileNotFoundError(
            "av_digits needs the recorded spoken digits of the Debian packages "
            f"{', '.join(missing)} (not found under {', '.join(_sound_roots(sounds_dir))}). "
            f"Install them: `sudo apt-get install {' '.join(missing)}` (or `make data` in the keras_mm "
            "checkout), or pass sounds_dir='/path/to/usr/share/asterisk/sounds'."
        )
    return found


def _espeak():
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError(
            "av_digits synthesises extra voices with espeak-ng, which is not installed. Install it: "
            "`sudo apt-get install espeak-ng` (or `make data`), or pass synthetic_voices=0 to use the "
            "5 recorded voices only."
        )
    return exe


def synthetic_voice_specs(count, seed):
    """``count`` distinct espeak-ng voices ``(language, variant, words/min, pitch)``, deterministic from ``seed``."""
    rng = np.random.default_rng([seed, 1])
    specs, seen = [], set()
    while len(specs) < count:
        spec = (str(rng.choice(SYNTHETIC_LANGUAGES)), str(rng.choice(SYNTHETIC_VARIANTS)),
                int(rng.integers(110, 230)), int(rng.integers(15, 85)))
        if spec[:2] not in seen:
            seen.add(spec[:2])
            specs.append(spec)
        if len(seen) == len(SYNTHETIC_LANGUAGES) * len(SYNTHETIC_VARIANTS):
            break
    return specs


def load_clip(path, sample_rate):
    """A speech file as a mono float32 waveform at ``sample_rate``, leading/trailing silence trimmed (librosa)."""
    import librosa

    wave, _ = librosa.load(path, sr=sample_rate, mono=True)
    wave, _ = librosa.effects.trim(wave, top_db=40)
    return wave.astype("float32")


def synthesise_digit(spec, digit, sample_rate, tmp_dir):
    """A digit spoken by espeak-ng voice ``spec`` (language, variant, speed, pitch), as :func:`load_clip` returns it."""
    language, variant, speed, pitch = spec
    out = os.path.join(tmp_dir, "espeak.wav")
    subprocess.run([_espeak(), "-v", f"{language}+{variant}", "-s", str(speed), "-p", str(pitch), "-w", out, str(digit)],
                   check=True, capture_output=True, timeout=30)
    return load_clip(out, sample_rate)


def _degrade_image(image8, rng, image_size, noise, occlusion):
    from PIL import Image

    pixels = Image.fromarray((image8 * (255.0 / 16.0)).astype("uint8"), mode="L")
    x = np.asarray(pixels.resize((image_size, image_size), Image.BILINEAR), dtype="float32")
    if occlusion > 0:
        side = int(round(image_size * np.sqrt(occlusion)))
        top, left = rng.integers(0, image_size - side + 1, size=2)
        x[top:top + side, left:left + side] = rng.uniform(0, 255, size=(side, side))
    x = x + rng.normal(0.0, noise * 255.0, size=x.shape)
    return np.clip(x, 0, 255).astype("uint8")


def _degrade_audio(clip, rng, num_samples, snr_db):
    out = np.zeros(num_samples, "float32")
    clip = clip[:num_samples] * rng.uniform(0.3, 1.0)
    start = rng.integers(0, num_samples - len(clip) + 1)
    out[start:start + len(clip)] = clip
    signal_power = float(np.mean(clip**2)) + 1e-12
    snr = rng.uniform(*snr_db)
    out += rng.normal(0.0, np.sqrt(signal_power / 10 ** (snr / 10.0)), size=num_samples).astype("float32")
    return np.clip(out, -1.0, 1.0)


@dataclass
class AVDigits(ManifestSplits):
    """A built AV-Digits set: ``manifest`` (CSV with ``image``, ``audio``, ``label``, ``split``, ``voice``) and its facts.

    Example:
        >>> import tempfile
        >>> data = keras_mm.datasets.av_digits(tempfile.mkdtemp(), synthetic_voices=0, max_rows_per_split=20, verbose=False)
        >>> data.counts, data.voices["test"]
        ({'train': 20, 'val': 20, 'test': 20}, ['rec:ru_RU_f_IvrvoiceRU'])
        >>> train = data.dataset("train", batch_size=4)  # raw PNG bytes and waveforms; pass model= for its inputs
        >>> sorted(train.element_spec[0])
        ['audio', 'image']
    """

    root: str
    manifest: str
    class_names: list
    voices: dict
    counts: dict
    config: dict = field(default_factory=dict)

    dataset_name = "av_digits"
    default_features = {"image": "image", "audio": "audio"}


def av_digits(
    cache_dir=None,
    *,
    seed=0,
    synthetic_voices=60,
    image_size=32,
    image_noise=0.35,
    image_occlusion=0.35,
    audio_snr_db=(-6.0, 6.0),
    sample_rate=16000,
    clip_seconds=1.0,
    split_fractions=(0.6, 0.2, 0.2),
    max_rows_per_split=None,
    sounds_dir=None,
    rebuild=False,
    verbose=True,
):
    """Build (or load from the cache) the AV-Digits benchmark.

    Args:
        cache_dir: where builds are kept (default ``$KERAS_MM_CACHE`` or
            ``~/.cache/keras_mm``); each distinct configuration gets its own
            folder, reused on later calls.
        seed: fixes the image split, the voice split, the pairing and every
            degradation.
        synthetic_voices: espeak-ng voices added to the 5 recorded ones
            (0 = recorded only; needs no espeak-ng).
        image_size: side of the saved (bilinearly upscaled) PNGs.
        image_noise: Gaussian pixel noise, as a fraction of 255.
        image_occlusion: area fraction of a random square replaced by noise.
        audio_snr_db: range of the signal-to-noise ratio of the added white noise.
        sample_rate, clip_seconds: the saved WAV format (16-bit PCM).
        split_fractions: train/val/test fractions of the images (stratified);
            voices are split in the same proportions and never shared.
        max_rows_per_split: cap each split (quick experiments and tests).
        sounds_dir: the asterisk ``sounds`` directory if not in a standard place.
        rebuild: rebuild even if cached.
        verbose: print progress.

    Returns:
        an :class:`AVDigits`.

    Raises:
        FileNotFoundError: naming the Debian package to install when the
            recorded voices or espeak-ng are missing.

    Example:
        >>> import tempfile  # the full benchmark: keras_mm.datasets.av_digits() (60 espeak-ng voices, cached)
        >>> data = keras_mm.datasets.av_digits(tempfile.mkdtemp(), synthetic_voices=0, max_rows_per_split=20, verbose=False)
        >>> model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 32},
        ...                                        "audio": "mfcc_cnn"}, fusion="attention", num_classes=10)
        >>> model.compile()
        >>> history = model.fit(data.dataset("train", model=model, batch_size=10, shuffle=True), epochs=1, verbose=0)
        >>> len(data.rows("test")), data.class_names[:3]
        (20, ['zero', 'one', 'two'])
    """
    if len(split_fractions) != 3 or abs(sum(split_fractions) - 1.0) > 1e-6 or min(split_fractions) <= 0:
        raise ValueError(f"split_fractions={split_fractions} must be three positive fractions summing to 1.")
    config = {
        "format": _FORMAT_VERSION, "seed": int(seed), "synthetic_voices": int(synthetic_voices),
        "image_size": int(image_size), "image_noise": float(image_noise), "image_occlusion": float(image_occlusion),
        "audio_snr_db": [float(v) for v in audio_snr_db], "sample_rate": int(sample_rate),
        "clip_seconds": float(clip_seconds), "split_fractions": [float(v) for v in split_fractions],
        "max_rows_per_split": max_rows_per_split,
    }
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    root = os.path.join(cache_dir or default_cache_dir(), f"av_digits-{key}")
    info_path = os.path.join(root, "info.json")
    if os.path.isfile(info_path) and not rebuild:
        with open(info_path) as f:
            info = json.load(f)
        return AVDigits(root, os.path.join(root, "manifest.csv"), CLASS_NAMES, info["voices"], info["counts"], config)

    recorded = find_recorded_voices(sounds_dir)
    if synthetic_voices:
        _espeak()
    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".av_digits-", dir=parent)
    try:
        info = _build(tmp, config, recorded, verbose)
        if os.path.isdir(root):
            shutil.rmtree(root)
        os.replace(tmp, root)  # atomic: a killed build leaves only a .av_digits-* temp folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return AVDigits(root, os.path.join(root, "manifest.csv"), CLASS_NAMES, info["voices"], info["counts"], config)


def _split_indices(labels, fractions, rng):
    splits = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        splits["train"] += list(idx[:n_train])
        splits["val"] += list(idx[n_train:n_train + n_val])
        splits["test"] += list(idx[n_train + n_val:])
    return {s: rng.permutation(np.array(v)) for s, v in splits.items()}


def _split_voices(names, fractions, rng):
    names = list(rng.permutation(names))
    n_val = max(1, int(round(fractions[1] * len(names))))
    n_test = max(1, int(round(fractions[2] * len(names))))
    return {"train": names[n_val + n_test:], "val": names[:n_val], "test": names[n_val:n_val + n_test]}


class BuildProgress:
    """Progress of a long dataset build: a bar in a terminal or notebook, a line every ``every`` steps in a log.

    Args:
        total: steps of the build.
        what: what a step is, for the log lines.
        verbose: ``False`` shows nothing.
        every: steps between log lines when there is no terminal or notebook.

    Example:
        >>> from keras_mm.datasets.av_digits import BuildProgress
        >>> progress = BuildProgress(4, "voices", verbose=True, every=2)
        >>> for step in range(1, 5):
        ...     progress.update(step)  # in a terminal or notebook: a keras.utils.Progbar
        av_digits: voices 2/4
        av_digits: voices 4/4
    """

    def __init__(self, total, what, verbose, every=12):
        self.total, self.what, self.verbose, self.every = total, what, verbose, every
        # Progbar redraws its line with control characters: right in a terminal or notebook, noise in a log file.
        interactive = sys.stdout.isatty() or "ipykernel" in sys.modules
        self.bar = keras.utils.Progbar(total) if verbose and interactive and total else None

    def update(self, done):
        """Record that ``done`` steps are finished."""
        if self.bar is not None:
            self.bar.update(done)
        elif self.verbose and (done % self.every == 0 or done == self.total):
            print(f"av_digits: {self.what} {done}/{self.total}")


def _build(out, config, recorded, verbose):
    import soundfile
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(config["seed"])
    rate, num_samples = config["sample_rate"], int(round(config["sample_rate"] * config["clip_seconds"]))
    fractions = config["split_fractions"]

    # --- voices: recorded and synthetic, each split disjointly ---
    clips = {}  # voice -> [10 waveforms]
    for voice, path in sorted(recorded.items()):
        clips[f"rec:{voice}"] = [load_clip(os.path.join(path, f"{d}.wav"), rate) for d in range(10)]
    specs = synthetic_voice_specs(config["synthetic_voices"], config["seed"])
    progress = BuildProgress(len(specs), "espeak-ng voices synthesised", verbose)
    with tempfile.TemporaryDirectory() as tmp_dir:
        for i, spec in enumerate(specs):
            clips["tts:{}+{}:s{}:p{}".format(*spec)] = [synthesise_digit(spec, d, rate, tmp_dir) for d in range(10)]
            progress.update(i + 1)
    rec_split = _split_voices(sorted(v for v in clips if v.startswith("rec:")), fractions, rng)
    tts_names = sorted(v for v in clips if v.startswith("tts:"))
    if len(tts_names) >= 3:
        tts_split = _split_voices(tts_names, fractions, rng)
    else:  # too few to split three ways: they all train
        tts_split = {"train": tts_names, "val": [], "test": []}
    voices = {s: [str(v) for v in rec_split[s] + tts_split[s]] for s in SPLITS}

    # --- images: stratified split, each image used once ---
    digits = load_digits()
    images, labels = digits.images, digits.target
    split_idx = _split_indices(labels, fractions, rng)
    os.makedirs(os.path.join(out, "images"))
    os.makedirs(os.path.join(out, "audio"))
    rows, counts = [], {}
    for split in SPLITS:
        idx = split_idx[split]
        if config["max_rows_per_split"]:
            idx = idx[: config["max_rows_per_split"]]
        counts[split] = len(idx)
        for k, i in enumerate(idx):
            label = int(labels[i])
            image = _degrade_image(images[i], rng, config["image_size"], config["image_noise"], config["image_occlusion"])
            voice = voices[split][rng.integers(len(voices[split]))]
            wave = _degrade_audio(clips[voice][label], rng, num_samples, config["audio_snr_db"])
            stem = f"{split}_{k:04d}"
            Image.fromarray(image, mode="L").save(os.path.join(out, "images", f"{stem}.png"))
            soundfile.write(os.path.join(out, "audio", f"{stem}.wav"), wave, rate, subtype="PCM_16")
            rows.append({"image": f"images/{stem}.png", "audio": f"audio/{stem}.wav", "label": label,
                         "split": split, "voice": voice, "scan": int(i)})
    with open(os.path.join(out, "manifest.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    info = {"config": config, "voices": voices, "counts": counts, "class_names": CLASS_NAMES,
            "sources": {"images": "sklearn.datasets.load_digits (UCI handwritten digits)",
                        "recorded_speech": sorted(RECORDED_VOICES), "synthetic_speech": "espeak-ng"}}
    with open(os.path.join(out, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    if verbose:
        print(f"av_digits: {counts} rows, voices train/val/test = "
              f"{len(voices['train'])}/{len(voices['val'])}/{len(voices['test'])} -> {out}")
    return info
