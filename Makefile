# monai_gan_aug: every target creates/updates its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: install demo test test-fast bench lint clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The main job: train the flagship bundle on the embedded demo dataset, generate a labelled synthetic set,
# and print where everything went.
demo: install
	$(PY) -m monai_gan_aug demo

test: install
	$(PY) -m pytest -q -p no:cacheprovider tests

test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests

bench: install
	$(PY) -m bench.run_all

lint: install
	$(PY) -m ruff check monai_gan_aug tests bench

clean:
	rm -rf $(VENV) runs .cache
