# monai_gan_aug: every target creates/updates its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: install label-env demo test test-fast bench lint clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# MONAI Label 0.8.5 needs pydicom<3 / numpy<2, which conflict with the core: it gets its own environment
# (pins and reasons in requirements-label.txt). The MONAI Label server test runs from it.
LABEL_VENV ?= .venv-label
LABEL_PY := $(LABEL_VENV)/bin/python
LABEL_STAMP := $(LABEL_VENV)/.installed-$(shell cat requirements-label.txt setup.py | cksum | cut -d' ' -f1)

$(LABEL_STAMP): requirements-label.txt setup.py
	test -x $(LABEL_PY) || $(PYTHON) -m venv $(LABEL_VENV)
	$(LABEL_PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(LABEL_PY) -m pip install --quiet -r requirements-label.txt
	$(LABEL_PY) -m pip install --quiet --no-deps monailabel==0.8.5 -e .
	$(LABEL_PY) -c "import monailabel.app, monai_gan_aug.label.server"
	rm -f $(LABEL_VENV)/.installed-*
	touch $(LABEL_STAMP)

label-env: $(LABEL_STAMP)

# The main job: train the flagship bundle on the embedded demo dataset, generate a labelled synthetic set,
# and print where everything went.
demo: install
	$(PY) -m monai_gan_aug demo

test: install label-env
	$(PY) -m pytest -q -p no:cacheprovider tests

test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests

bench: install
	$(PY) -m bench.run_all

lint: install
	$(PY) -m ruff check monai_gan_aug tests bench experiments

clean:
	rm -rf $(VENV) $(LABEL_VENV) runs .cache
