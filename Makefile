# Regularization from Scratch: build the book and run the tests.
#
#   make book    set up .venv and MathJax, execute the chapters, build _build/html
#   make test    build the book (the chapters run once, there), then the tests
#   make pdf     the book as one PDF, _build/latex/book.pdf (LaTeX via apt-get)
#   make colab-test  run every chapter in fresh Colab-like and Binder venvs
#
# Each sets itself up from a fresh clone (Python 3.11 and make). On Debian,
# as root, make test also installs chromium and nodejs/npm with apt-get (for
# the browser test and axe-core), and make pdf the TeX packages.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
PIP_VERSION := 26.3
TORCH_VERSION := 2.13.0

VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# Run the venv's tools (and the notebook kernels they start) first on PATH.
# REGMLP_PROGRESS=0: no tqdm bars in the built pages or the test logs.
RUN := PATH="$(BIN):$$PATH" PYDEVD_DISABLE_FILE_VALIDATION=1 JUPYTER_PLATFORM_DIRS=1 REGMLP_PROGRESS=0
# The chapters multiply small matrices, where a second BLAS thread costs more
# than it brings (measured 2-3x slower on 2 busy cores); the book build and
# the tests (two pytest workers) use one BLAS thread per process.
ONE_THREAD := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# REGMLP_JOBS: processes per regmlp.experiments.sweep. The book build runs one
# notebook at a time, so its sweeps take both cores; the tests already run two
# pytest workers, so each worker's sweeps stay in its own process.
BOOK_JOBS := REGMLP_JOBS=2
TEST_JOBS := REGMLP_JOBS=1

# The local MathJax copy: MathJax 3.2.2 as packaged on PyPI by
# django-static-mathjax (pinned in constraints.txt; no npm needed), copied into
# a folder that _config.yml lists in html_static_path (Sphinx copies it to
# _build/html/_static/mathjax/).
MATHJAX_SRC = $(shell $(VENV)/bin/python -c "import mathjax, pathlib; print(pathlib.Path(mathjax.__file__).parent / 'static/mathjax/es5')")
MATHJAX_DIR := _build/mathjax-static/mathjax

.PHONY: help venv mathjax book test chromium nodejs axe tex pdf colab-test exercises grade \
	strip replicate torch parity bench clean distclean code-stamp

help:
	@echo "make book       build the book into _build/html (open _build/html/index.html)"
	@echo "make test       build the book, then run the tests (ruff included)"
	@echo "make venv       create .venv with the package and its [test] extra"
	@echo "make pdf        build the book as a PDF: _build/latex/book.pdf (TeX via apt-get)"
	@echo "make colab-test run the chapters in fresh Colab-like and Binder environments"
	@echo "make chromium   install Debian's chromium for the browser test (root)"
	@echo "make axe        install axe-core (npm) into _build/node for the browser test"
	@echo "make exercises  write learner notebooks (solutions as stubs) to _build/exercises"
	@echo "make grade      grade the notebooks in _build/exercises (GRADE_ARGS=--full: run all cells)"
	@echo "make strip      remove outputs from chapters/*.ipynb before committing"
	@echo "make replicate  run every chapter with new random seeds (SEEDS=\"10 11 12 13 14\" to choose)"
	@echo "make parity     install torch $(TORCH_VERSION) and compare regmlp with PyTorch"
	@echo "make bench      install torch $(TORCH_VERSION) and run benchmarks/bench.py"
	@echo "make clean      remove _build and caches; 'make distclean' also .venv"

# --- environment -----------------------------------------------------------

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade "pip==$(PIP_VERSION)"
	$(VENV)/bin/python -m pip install -c constraints.txt -e ".[test]"
	touch $@

mathjax: $(MATHJAX_DIR)/tex-mml-chtml.js

# tex-mml-chtml.js with what it loads on demand: its fonts, the TeX
# extensions (autoload), the menu's accessibility parts and speech rules.
$(MATHJAX_DIR)/tex-mml-chtml.js: $(STAMP)
	rm -rf $(MATHJAX_DIR)
	mkdir -p $(MATHJAX_DIR)/output $(MATHJAX_DIR)/input/tex
	cp -r $(MATHJAX_SRC)/output/chtml $(MATHJAX_DIR)/output/
	cp -r $(MATHJAX_SRC)/input/tex/extensions $(MATHJAX_DIR)/input/tex/
	cp -r $(MATHJAX_SRC)/a11y $(MATHJAX_SRC)/sre $(MATHJAX_SRC)/ui $(MATHJAX_DIR)/
	cp $(MATHJAX_SRC)/tex-mml-chtml.js $@

# --- the book ---------------------------------------------------------------

# jupyter-cache reuses a chapter's executed copy for as long as the notebook's
# code is unchanged, and Sphinx does not even re-read an unchanged notebook.
# The chapters also run regmlp, so a change to the package or to the pinned
# versions clears both (the executed copies and Sphinx's doctrees): the book
# shows, and its asserts test, the code of this checkout.
EXEC_CACHE := _build/.jupyter_cache _build/.doctrees
CODE_STAMP := _build/.jupyter_cache.code
STAMPED := regmlp pyproject.toml constraints.txt
code-stamp:
	@mkdir -p $(dir $(CODE_STAMP)); \
	stamp=$$(find $(STAMPED) -type f -not -path '*__pycache__*' -print0 | LC_ALL=C sort -z \
	  | xargs -0 sha256sum | sha256sum | cut -c1-16); \
	if [ "$$(cat $(CODE_STAMP) 2>/dev/null)" != "$$stamp" ]; then \
	  rm -rf $(EXEC_CACHE); echo "$$stamp" > $(CODE_STAMP); \
	  echo "code-stamp: regmlp or the pins changed, the chapters execute afresh"; fi

# -W: every warning is an error; -n: every broken reference is one;
# _config.yml sets execute.raise_on_error, so a cell that raises fails the build.
book: venv mathjax code-stamp
	$(RUN) $(ONE_THREAD) $(BOOK_JOBS) jupyter-book build . -W -n --keep-going
	@if grep -rl "cdn.jsdelivr.net/npm/mathjax" _build/html --include=*.html >/dev/null; then \
	  echo "error: the built HTML loads MathJax from a CDN"; exit 1; fi
	@echo "Book built: open _build/html/index.html"

# --- tests -----------------------------------------------------------------

# The chapters are executed once, by the book build (a prerequisite): it fails
# on any cell that raises (tests/test_build_guard.py checks that it does), which
# is what running them again under nbval guaranteed. The book also has to exist
# for tests/test_browser.py (which also runs axe-core, hence `axe`). Then one
# pytest run over tests/, which includes ruff (tests/test_style.py). One chapter
# by hand:
#   pytest --nbval --nbval-current-env chapters/NN_x.ipynb
test: venv book chromium axe
	$(RUN) $(ONE_THREAD) $(TEST_JOBS) python -m pytest -n 2 --dist loadfile tests

# Debian's Chromium, for tests/test_browser.py (Playwright drives it; no
# browser is downloaded). Needs root and apt-get; a no-op if it is there.
chromium:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	else echo "install Chromium (Debian package chromium) to run tests/test_browser.py"; exit 1; fi

# Debian's Node.js and npm, to fetch axe-core (root; a no-op if npm is there).
nodejs:
	@if command -v npm >/dev/null 2>&1; then echo "npm: $$(command -v npm)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; \
	else echo "install Node.js and npm (Debian packages nodejs, npm) to run the axe-core test"; exit 1; fi

# axe-core, the accessibility engine tests/test_browser.py runs on every page,
# pinned, from npm, into _build/node (not committed; make clean removes it).
AXE_VERSION := 4.14.1
AXE := _build/node/node_modules/axe-core/axe.min.js
axe: $(AXE)

$(AXE): | nodejs
	mkdir -p _build/node
	npm install --prefix _build/node --no-save --no-package-lock --no-audit --no-fund \
	  --loglevel=error "axe-core@$(AXE_VERSION)"
	test -s $@

# --- the PDF -----------------------------------------------------------------

# Debian's TeX: XeLaTeX (Unicode text and math), latexmk, makeindex, the
# FreeFont OTF fonts, and poppler-utils (pdftotext, for tests/test_pdf.py);
# about 120 MB. Not texlive-fonts-extra (500 MB): the one package the Jupyter
# Book LaTeX class wants from it, bbm, is replaced by tools/latex/bbm.sty.
TEX_PACKAGES := texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
	texlive-xetex latexmk fonts-freefont-otf poppler-utils
tex:
	@if command -v dpkg >/dev/null 2>&1; then \
	  missing=$$(for p in $(TEX_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	else missing=$$(for c in xelatex latexmk makeindex pdftotext; do \
	  command -v $$c >/dev/null 2>&1 || echo $$c; done); fi; \
	if [ -z "$$missing" ]; then echo "TeX: installed"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "missing: $$missing (install TeX Live with XeLaTeX, latexmk, poppler-utils)"; exit 1; fi

# Jupyter Book's LaTeX builder (XeLaTeX, makeindex) under the same -W -n rules
# as the HTML; the executed notebooks come from the same cache as make book.
# tests/test_pdf.py then checks the PDF it made.
pdf: venv mathjax tex code-stamp
	rm -f _build/latex/book.pdf
	$(RUN) $(ONE_THREAD) $(BOOK_JOBS) jupyter-book build . --builder pdflatex -W -n --keep-going
	test -s _build/latex/book.pdf
	$(RUN) REGMLP_PDF_TEST=1 python -m pytest -p no:cacheprovider tests/test_pdf.py
	@echo "PDF built: _build/latex/book.pdf"

# --- reader environments -------------------------------------------------------

# Colab and Binder, for real: fresh venvs with only what a reader has there,
# every chapter executed outside the repository (tests/test_colab.py,
# tests/test_binder.py). A few minutes; .ci/run runs it.
colab-test: venv
	$(RUN) REGMLP_READER_ENVS=1 python -m pytest -p no:cacheprovider tests/test_colab.py tests/test_binder.py

# --- helpers ---------------------------------------------------------------

# The learner version of every chapter: solutions replaced by stubs.
exercises: venv
	$(RUN) python tools/make_exercises.py chapters _build/exercises

# Grade a learner's notebooks: each exercise's solution and check cells, PASS/FAIL per exercise.
# The learner notebooks are written once (never overwritten: they hold the learner's work).
grade: venv
	@test -d _build/exercises || $(MAKE) exercises
	$(RUN) $(ONE_THREAD) python -m regmlp.exercises grade $(GRADE_ARGS) _build/exercises/*.ipynb

strip: venv
	$(RUN) python tools/strip_outputs.py chapters/*.ipynb

# Every chapter again with seeds it was not written with (random unless
# SEEDS is given): its asserted claims must still hold. Prints the seeds.
replicate: venv
	$(RUN) $(ONE_THREAD) $(BOOK_JOBS) python tools/replicate.py $(if $(SEEDS),--seeds $(SEEDS))

# torch is installed on its own (it is not in constraints.txt) and pinned:
# torch==2.13.0 takes the CPU build this machine keeps on disk.
torch: venv
	$(RUN) python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(RUN) python -m pip install --quiet -c constraints.txt -e ".[bench]"

# regmlp against PyTorch: layers, loss and optimizers, values and gradients.
parity: torch
	$(RUN) python -m pytest -q -p no:cacheprovider tests/test_torch_parity.py tests/test_optim.py -k "torch or parity"

# The benchmark runs with both libraries' default threads (not ONE_THREAD); it gives the
# chapters it executes the book build's environment itself. It writes benchmarks/RESULTS.md.
# Options: make bench BENCH_ARGS="--quick" (python benchmarks/bench.py --help).
bench: parity
	$(RUN) python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf _build .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -not -path "./.venv/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
