"""Rebuild the bundled sample dataset in ``keras_mm/datasets/sample/`` (maintainers only).

The sample is built so that its test score means something: every file belongs
to exactly one split (train / val / test), the voices of the spoken digits are
disjoint between splits, and each modality carries the label only in part:

- image: a real handwritten digit scan (scikit-learn ``load_digits``, UCI,
  8x8 grey), each scan used once; a third of them get a random occluding block;
- audio: the digit spoken by a voice of that split only: real recordings
  (Debian ``asterisk-core-sounds-en-wav``, Allison Smith, CC-BY-SA-3.0) and
  espeak-ng English voices (a voice = language + variant; speed and pitch
  drawn per voice), trimmed, with white noise at a random SNR, 8 kHz 16-bit;
- text: a noisy caption: ~40 % name the true digit, ~15 % name a wrong one
  (a look-alike digit, as a hurried annotator would), the rest say nothing.

``manifest.csv`` has the columns ``image, text, audio, label, split``; ``sources.csv`` gives each file's
split and origin (``load_digits[<index>]`` or the voice), so the disjointness can be checked (tests do).

Usage (needs espeak-ng and the asterisk package unpacked; ``make data`` does both):
    python -m keras_mm.datasets.build_sample [sounds_dir]
"""

import csv
import os
import shutil
import sys
import tempfile

import numpy as np

from keras_mm.datasets.av_digits import find_recorded_voices, load_clip, synthesise_digit

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPLITS = ("train", "val", "test")
ROWS_PER_CLASS = {"train": 20, "val": 5, "test": 10}
SAMPLE_RATE = 8000
#: Voices per split, never shared. "rec:<dir>" is a real asterisk recording, "tts:<language>+<variant>" espeak-ng.
#: The real speaker is held out for test: the score then says whether audio learnt from synthetic and other
#: voices transfers to a human voice it never heard.
VOICES = {
    "train": ["tts:en-us+m1", "tts:en-us+f2", "tts:en+m3", "tts:en+f1", "tts:en-gb-scotland+m2",
              "tts:en-029+f3", "tts:en-gb-x-rp+m4", "tts:en-gb-x-gbclan+f4"],
    "val": ["tts:en+m6", "tts:en-us+f5", "tts:en-gb-x-gbcwmd+m5"],
    "test": ["rec:en_US_f_Allison", "tts:en-gb-scotland+f1", "tts:en-029+m2", "tts:en-us+m7"],
}
AUDIO_SNR_DB = (0.0, 12.0)
OCCLUDED_FRACTION = 1 / 3
TRUE_CAPTIONS = ["a picture of the number {w}", "{w}", "digit {d}", "handwritten {w}", "the figure shows a {w}",
                 "looks like a {w} to me", "{d}"]
EMPTY_CAPTIONS = ["a handwritten digit", "some number", "", "scan from a form", "hard to read", "a number"]
#: the wrong digit a caption names: a look-alike of the true one
LOOK_ALIKES = {0: 6, 1: 7, 2: 7, 3: 8, 4: 9, 5: 6, 6: 5, 7: 1, 8: 3, 9: 4}
CAPTION_MIX = {"true": 0.4, "wrong": 0.15}  # the rest: uninformative


def _voice_clips(voice, rng, recorded, tmp_dir):
    """The ten digits spoken by ``voice``, trimmed, at ``SAMPLE_RATE``."""
    kind, name = voice.split(":", 1)
    if kind == "rec":
        return [load_clip(os.path.join(recorded[name], f"{d}.wav"), SAMPLE_RATE) for d in range(10)]
    language, variant = name.split("+")
    spec = (language, variant, int(rng.integers(120, 200)), int(rng.integers(25, 75)))
    return [synthesise_digit(spec, d, SAMPLE_RATE, tmp_dir) for d in range(10)]


def _noisy(clip, rng):
    """``clip`` at a random gain, with a short random lead-in and white noise at a random SNR."""
    lead = np.zeros(int(rng.integers(0, SAMPLE_RATE // 8)), "float32")
    clip = np.concatenate([lead, clip[: SAMPLE_RATE - len(lead)] * rng.uniform(0.4, 1.0)])
    power = float(np.mean(clip**2)) + 1e-12
    snr = rng.uniform(*AUDIO_SNR_DB)
    clip = clip + rng.normal(0.0, np.sqrt(power / 10 ** (snr / 10.0)), size=len(clip))
    return np.clip(clip, -1.0, 1.0).astype("float32")


def _image(scan8, rng):
    """A ``load_digits`` scan as 8-bit grey; with probability ``OCCLUDED_FRACTION`` a 3x3 block is blanked."""
    image = (scan8 * (255.0 / 16.0)).astype(np.uint8)
    if rng.random() < OCCLUDED_FRACTION:
        top, left = rng.integers(0, 6, size=2)
        image[top:top + 3, left:left + 3] = 0
    return image


def _caption(label, rng):
    kind = rng.choice(["true", "wrong", "empty"], p=[CAPTION_MIX["true"], CAPTION_MIX["wrong"],
                                                    1 - sum(CAPTION_MIX.values())])
    if kind == "empty":
        return str(rng.choice(EMPTY_CAPTIONS))
    digit = label if kind == "true" else LOOK_ALIKES[label]
    return str(rng.choice(TRUE_CAPTIONS)).format(w=CLASS_NAMES[digit], d=digit)


def _write_audio(out, voices, rng, recorded):
    """One WAV per (voice, digit); returns ``{split: {digit: [relative paths]}}``."""
    import soundfile

    os.makedirs(os.path.join(out, "audio"))
    paths = {s: {d: [] for d in range(10)} for s in SPLITS}
    with tempfile.TemporaryDirectory() as tmp_dir:
        for split in SPLITS:
            for voice in voices[split]:
                stem = voice.replace(":", "_").replace("+", "_")
                for digit, clip in enumerate(_voice_clips(voice, rng, recorded, tmp_dir)):
                    name = f"audio/{split}_{stem}_{digit}.wav"  # flat: setup.cfg's package_data lists sample/audio/*.wav
                    soundfile.write(os.path.join(out, name), _noisy(clip, rng), SAMPLE_RATE, subtype="PCM_16")
                    paths[split][digit].append((name, voice))
    return paths


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def build(out_dir, sounds_dir=None, seed=0):
    """Write the sample (PNG, WAV, ``manifest.csv``) to ``out_dir``, replacing what is there.

    Needs espeak-ng and the asterisk recordings (``make data``); takes about a minute.

    Example:
        >>> from keras_mm.datasets.build_sample import VOICES  # build(out_dir) writes them; no voice is in two splits
        >>> set(VOICES["train"]) & set(VOICES["test"]), sum(len(v) for v in VOICES.values())
        (set(), 15)
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    recorded = find_recorded_voices(sounds_dir)
    rng = np.random.default_rng(seed)
    tmp = tempfile.mkdtemp(prefix=".sample-", dir=os.path.dirname(os.path.abspath(out_dir)))
    try:
        audio = _write_audio(tmp, VOICES, rng, recorded)
        digits = load_digits()
        os.makedirs(os.path.join(tmp, "images"))
        rows, sources = [], {}
        for digit in range(10):
            scans = rng.permutation(np.flatnonzero(digits.target == digit))  # each scan used once
            k = 0
            for split in SPLITS:
                clips = audio[split][digit]
                for j in range(ROWS_PER_CLASS[split]):
                    name = f"images/{digit}_{k:02d}.png"
                    Image.fromarray(_image(digits.images[scans[k]], rng), mode="L").save(os.path.join(tmp, name))
                    clip, voice = clips[j % len(clips)]
                    rows.append({"image": name, "text": _caption(digit, rng), "audio": clip, "label": digit, "split": split})
                    sources[name] = (split, f"load_digits[{scans[k]}]")
                    sources[clip] = (split, voice)
                    k += 1
        _write_csv(os.path.join(tmp, "manifest.csv"), [rows[i] for i in rng.permutation(len(rows))])
        _write_csv(os.path.join(tmp, "sources.csv"),
                   [{"file": f, "split": s, "source": src} for f, (s, src) in sorted(sources.items())])
        readme = os.path.join(out_dir, "README.md")
        if os.path.isfile(readme):
            shutil.copy(readme, tmp)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows


if __name__ == "__main__":
    build(os.path.join(os.path.dirname(__file__), "sample"), sys.argv[1] if len(sys.argv) > 1 else None)
