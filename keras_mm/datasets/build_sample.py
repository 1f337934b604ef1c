"""Rebuild the bundled sample dataset in ``keras_mm/datasets/sample/`` (maintainers only).

Sources (both real data, installable offline):
- images: scikit-learn's ``load_digits`` (UCI handwritten digits, 8x8 scans);
- audio: spoken digits 0-9 recorded by two voices, from the Debian packages
  ``asterisk-core-sounds-en-wav`` (Allison Smith) and
  ``asterisk-core-sounds-fr-wav`` (June Wallack), CC-BY-SA-3.0;
- text: short captions, half naming the digit and half uninformative or empty.

Usage:
    apt-get download asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav
    for f in *.deb; do dpkg -x $f root; done
    python -m keras_mm.datasets.build_sample root/usr/share/asterisk/sounds
"""

import csv
import os
import shutil
import sys

import numpy as np

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
VOICES = {"en": "en_US_f_Allison", "fr": "fr_CA_f_June"}
INFORMATIVE = ["a picture of the number {w}", "{w}", "digit {d}", "handwritten {w}", "the figure shows a {w}"]
UNINFORMATIVE = ["a handwritten digit", "some number", "", "scan from a form"]


def build(sounds_root, out_dir, per_class=24, seed=0):
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "audio"), exist_ok=True)
    for lang, voice in VOICES.items():
        for d in range(10):
            shutil.copy(os.path.join(sounds_root, voice, "digits", f"{d}.wav"), os.path.join(out_dir, "audio", f"{lang}_{d}.wav"))
    rows = []
    for d in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == d))[:per_class]
        for k, i in enumerate(idx):
            image = (digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
            name = f"images/{d}_{k:02d}.png"
            Image.fromarray(image, mode="L").save(os.path.join(out_dir, name))
            informative = rng.random() < 0.5
            template = rng.choice(INFORMATIVE if informative else UNINFORMATIVE)
            rows.append(
                {
                    "image": name,
                    "text": template.format(w=WORDS[d], d=d),
                    "audio": f"audio/{rng.choice(list(VOICES))}_{d}.wav",
                    "label": d,
                    "split": "test" if k >= per_class * 3 // 4 else "train",
                }
            )
    order = rng.permutation(len(rows))
    with open(os.path.join(out_dir, "manifest.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "text", "audio", "label", "split"])
        writer.writeheader()
        for i in order:
            writer.writerow(rows[i])


if __name__ == "__main__":
    build(sys.argv[1], os.path.join(os.path.dirname(__file__), "sample"))
