# Quickstart targets: each sets up .venv on a fresh machine (idempotent) and then does its job.
PY ?= python3
VENV := .venv
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test docs docs-serve

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet '.[all,birdnet,test,docs]'
	# aiSFX's checkpoint ships in its wheel, which pins numpy==1.23.0/librosa==0.9.2: install it without deps
	$(VENV)/bin/pip install --quiet --no-deps aisfx==0.1.2
	touch $@

setup: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --no-deps --force-reinstall .

demo: setup
	$(VENV)/bin/bind demo

test: setup
	$(VENV)/bin/pytest -q -rs

# the documentation site, built strictly (a broken link or reference fails); docs-serve: live at http://127.0.0.1:8000
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve
