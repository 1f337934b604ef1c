"""Writes the notebooks in this folder from the cells below (outputs stripped; CI executes them).

Run: ``python notebooks/build_notebooks.py``. Edit the cells here, not the .ipynb files.
"""

import os

import nbformat as nbf

HERE = os.path.dirname(os.path.abspath(__file__))

NOTEBOOKS = {
    "01_quickstart.ipynb": [
        ("md", "# keras_mm quickstart\nBuild an image + text + audio model, train it on the bundled sample data "
               "(handwritten digits, captions, spoken digits), evaluate it and look at the plots."),
        ("code", "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')\nimport keras, keras_mm\n"
                 "print(keras_mm.list_encoders(), keras_mm.list_fusions(), keras_mm.list_heads(), sep='\\n')"),
        ("code", "keras.utils.set_random_seed(0)\n"
                 "config = keras_mm.ModelConfig(\n"
                 "    encoders={'image': {'name': 'small_cnn', 'image_size': 32, 'filters': [16, 32]},\n"
                 "              'text': {'name': 'lstm', 'vocabulary': ['zero','one','two','three','four','five','six','seven','eight','nine','digit','number'], 'sequence_length': 8},\n"
                 "              'audio': {'name': 'mfcc_cnn', 'num_samples': 16000, 'filters': [16, 32]}},\n"
                 "    fusion='attention', num_classes=10, modality_dropout=0.25)\n"
                 "manifest = keras_mm.datasets.sample_manifest_path()\n"
                 "data = lambda split, **options: lambda m: keras_mm.data.from_manifest(manifest, model=m, split=split, batch_size=32, cache=True, **options)\n"
                 "model, history = keras_mm.train(config, data('train', shuffle=True), data('val'), epochs=8, strategy=None, learning_rate=3e-3, verbose=2)"),
        ("md", "After the last epoch, `train` fitted the head combination on the validation split (the log's last line): "
               "how much the answer draws on the fused head and on each modality's own head, weights of least validation "
               "loss. `combine_heads=False` keeps the fused head alone."),
        ("code", "combination = history.head_combination\n"
                 "print(combination['rows'], 'validation rows; val loss', round(combination['loss_before'], 3), '->', round(combination['loss_after'], 3))\n"
                 "{name: round(weight, 2) for name, weight in combination['weights'].items()}"),
        ("md", "The model's graph: one encoder per feature, the fusion, the head. `model.plot()` draws it with "
               "Graphviz (`apt-get install graphviz`; `make install` installs it) and says so when `dot` is missing."),
        ("code", "from IPython.display import Image, display\n"
                 "try:\n    display(model.plot())\nexcept RuntimeError as error:  # no Graphviz on this machine\n    print(error)"),
        ("md", "Scores on the held-out test split. A report shows its tables and plots inline; "
               "`output_dir` also writes them as PNG files and `report.json`."),
        ("code", "test = data('test')(model)\n"
                 "report = keras_mm.evaluate(model, test, output_dir='quickstart_report', history=history)\n"
                 "report"),
        ("code", "robust = keras_mm.evaluate_robustness(model, test, output_dir='quickstart_report')\n"
                 "for name in ('training_curves.png', 'robustness.png'):\n"
                 "    display(Image(os.path.join('quickstart_report', name)))"),
    ],
    "02_mirrored_training_and_serving.ipynb": [
        ("md", "# Mirrored training, export, and calling the SavedModel with raw inputs\n"
               "Without GPUs we split the CPU into two logical devices so `MirroredStrategy` has 2 replicas "
               "(this must happen before TensorFlow runs any op)."),
        ("code", "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')\nfrom keras_mm.training import split_cpu\n"
                 "split_cpu(2)\nimport keras, numpy as np, tensorflow as tf, keras_mm"),
        ("code", "config = keras_mm.ModelConfig(encoders={'image': {'name': 'small_cnn', 'image_size': 32, 'filters': [16, 32]},\n"
                 "                                        'audio': {'name': 'mfcc_cnn', 'num_samples': 16000, 'filters': [16, 32]}},\n"
                 "                              fusion='attention', num_classes=10, modality_dropout=0.2)\n"
                 "manifest = keras_mm.datasets.sample_manifest_path()\n"
                 "data = lambda m: keras_mm.data.from_manifest(manifest, model=m, split='train', batch_size=32, cache=True)\n"
                 "model, history = keras_mm.train(config, data, epochs=12, strategy='mirrored', learning_rate=3e-3, verbose=2)\n"
                 "print('replicas:', keras_mm.training.resolve_strategy('mirrored').num_replicas_in_sync)"),
        ("code", "import tempfile\nexport_dir = os.path.join(tempfile.mkdtemp(), 'digits')\n"
                 "version_dir = keras_mm.export_saved_model(model, export_dir)\nprint(version_dir, sorted(os.listdir(version_dir)))"),
        ("code", "# Raw inputs: PNG bytes and a waveform; the second sample's image is corrupt, the third has no audio.\n"
                 "rows = keras_mm.data.Manifest(manifest, features=['image', 'audio'], split='test').rows[:3]\n"
                 "root = os.path.dirname(manifest)\n"
                 "images = [open(os.path.join(root, r['image']), 'rb').read() for r in rows]\n"
                 "images[1] = images[1][:20]\n"
                 "audio = [keras_mm.data.load_audio_file(os.path.join(root, r['audio']), 16000) for r in rows]\n"
                 "audio[2] = np.zeros(10, 'float32')\n"
                 "served = keras_mm.serving.load_saved_model(export_dir)\n"
                 "out = keras_mm.serving.call_signature(served, {'image': images, 'audio': audio})\n"
                 "print('labels   ', [r['label'] for r in rows])\nprint('class_id ', out['class_id'])\n"
                 "print('image_present', out['image_present'], 'audio_present', out['audio_present'])"),
        ("code", "report = keras_mm.verify_export(model, export_dir, {'image': images, 'audio': audio})\n"
                 "print('fresh-process parity', report['max_abs_diff'], 'TF1 session parity', report['session_max_abs_diff'])\n"
                 "print(keras_mm.serving.rest_request({'image': images[:1], 'audio': [audio[0][:4].tolist()]})[:200], '...')"),
    ],
    "03_clip_retrieval.ipynb": [
        ("md", "# CLIP-style retrieval between images and speech\nA dual encoder maps digit scans and spoken digits into one "
               "embedding space with the symmetric InfoNCE loss."),
        ("code", "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')\nimport keras, numpy as np, tensorflow as tf, keras_mm\n"
                 "keras.utils.set_random_seed(0)\n"
                 "model = keras_mm.build_dual_encoder(a={'image': {'name': 'small_cnn', 'image_size': 32, 'filters': [16, 32]}},\n"
                 "                                    b={'audio': {'name': 'mfcc_cnn', 'num_samples': 16000, 'filters': [16, 32]}}, embed_dim=32)"),
        ("code", "manifest = keras_mm.datasets.sample_manifest_path()\n"
                 "def pairs(split):\n"
                 "    ds = keras_mm.data.from_manifest(manifest, features=['image', 'audio'], label=None, split=split)\n"
                 "    return ds.map(model.preprocessor).batch(30).cache()\n"
                 "train, test = pairs('train'), pairs('test')\n"
                 "print('before', model.retrieval_metrics(test))\n"
                 "model.compile(optimizer=keras.optimizers.Adam(2e-3))\nmodel.fit(train, epochs=15, verbose=2)\n"
                 "print('after ', model.retrieval_metrics(test))"),
        ("md", "Several rows share a digit (and the same two voices), so recall counts only the exact partner: "
               "chance recall@1 on a batch of 30 is about 0.03."),
    ],
    "04_distillation.ipynb": [
        ("md", "# Knowledge distillation\nA larger attention model teaches a smaller concat model."),
        ("code", "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')\nimport keras, numpy as np, keras_mm\nkeras.utils.set_random_seed(0)\n"
                 "encoders = {'image': {'name': 'small_cnn', 'image_size': 32, 'filters': [16, 32]},\n"
                 "            'audio': {'name': 'mfcc_cnn', 'num_samples': 16000, 'filters': [16, 32]}}\n"
                 "teacher = keras_mm.build_model(encoders=encoders, fusion='attention', num_classes=10)\n"
                 "student = keras_mm.build_model(encoders={'image': {'name': 'small_cnn', 'image_size': 32, 'filters': [8]},\n"
                 "                                         'audio': {'name': 'mfcc_cnn', 'num_samples': 16000, 'filters': [8]}}, num_classes=10)\n"
                 "print('teacher params', teacher.count_params(), 'student params', student.count_params())"),
        ("code", "manifest = keras_mm.datasets.sample_manifest_path()\n"
                 "train = keras_mm.data.from_manifest(manifest, model=teacher, split='train', batch_size=32, cache=True)\n"
                 "test = keras_mm.data.from_manifest(manifest, model=teacher, split='test', batch_size=32, cache=True)\n"
                 "teacher.compile(optimizer=keras.optimizers.Adam(3e-3)); teacher.fit(train, epochs=25, verbose=0)\n"
                 "distiller = keras_mm.Distiller(teacher, student, temperature=3.0, alpha=0.3)\n"
                 "distiller.compile(optimizer=keras.optimizers.Adam(5e-3)); distiller.fit(train, epochs=25, verbose=0)"),
        ("code", "for name, m in (('teacher', teacher), ('student', distiller.student)):\n"
                 "    print(name, keras_mm.evaluate(m, test, verbose=False).metrics['accuracy'])"),
    ],
    "05_custom_encoder.ipynb": [
        ("md", "# Writing your own encoder\nOne class and one decorator; the shared test helpers check it."),
        ("code", "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')\nimport keras, numpy as np, keras_mm\n"
                 "from keras_mm.preprocessing import ImagePreprocessor\n\n"
                 "@keras_mm.register_encoder('tiny_mlp')\n"
                 "class TinyMLPEncoder(keras_mm.encoders.Encoder):\n"
                 "    modality = 'image'\n    example_config = {'units': 8, 'image_size': 16}\n\n"
                 "    def __init__(self, units=64, image_size=32, **kwargs):\n"
                 "        super().__init__(**kwargs)\n        self.units, self.image_size = units, image_size\n"
                 "        self.flatten, self.dense = keras.layers.Flatten(), keras.layers.Dense(units, activation='relu')\n\n"
                 "    def input_signature(self):\n        return {'': ((self.image_size, self.image_size, 3), 'float32')}\n\n"
                 "    def build_preprocessor(self, feature):\n        return ImagePreprocessor(feature, (self.image_size, self.image_size))\n\n"
                 "    @property\n    def output_dim(self):\n        return self.units\n\n"
                 "    def call(self, inputs):\n        return self.dense(self.flatten(inputs[''] / 255.0))\n\n"
                 "    def get_config(self):\n        return {**super().get_config(), 'units': self.units, 'image_size': self.image_size}"),
        ("code", "keras_mm.testing.run_encoder_test(TinyMLPEncoder, TinyMLPEncoder.example_config)\n"
                 "model = keras_mm.build_model(encoders={'image': {'name': 'tiny_mlp', 'units': 16, 'image_size': 16}, 'audio': {'name': 'mfcc_cnn', 'num_samples': 4000, 'filters': [8]}},\n"
                 "                             fusion='gated', num_classes=3)\n"
                 "x = model.preprocessor.process_batch(model.preprocessor.example_raw(4))\n"
                 "keras_mm.testing.run_serialization_test(model, x)\nprint('tiny_mlp' in keras_mm.list_encoders('image'), model.predict(x, verbose=0).shape)"),
    ],
}


def main():
    for name, cells in NOTEBOOKS.items():
        nb = nbf.v4.new_notebook()
        nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbf.write(nb, os.path.join(HERE, name))


if __name__ == "__main__":
    main()
