# The two commands of a fresh machine: `make demo` and `make test`. Each creates .venv,
# builds the C++ core into the package (pip install .) and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SOURCES := $(shell find cpp src python -type f -not -name '*.pyc') CMakeLists.txt pyproject.toml

.PHONY: demo test bench sanitize fuzz clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Rebuilt only when a source file changes; the build directory makes it incremental.
$(VENV)/.installed-test: $(PY) $(SOURCES)
	$(PY) -m pip install --quiet ".[test]"
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(PY) -m pip install --quiet ".[bench]"
	touch $@

demo: $(VENV)/.installed-test
	$(PY) examples/demo_photos.py

test: $(VENV)/.installed-test
	$(PY) -m pytest

# Benchmarks time numpy and SPAMS too: the OpenBLAS tuning variables of this machine slow
# them about 2x, so they are unset here (never in tests or CI).
bench: $(VENV)/.installed-bench
	cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../$(PY) bench_omp.py
	cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../$(PY) bench_dictionary.py
	cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../$(PY) bench_range_coder.py

# The test suite once under AddressSanitizer + UBSan, in its own venv.
sanitize: $(PY)
	$(PYTHON) -m venv .venv-asan
	.venv-asan/bin/pip install --quiet --upgrade pip
	.venv-asan/bin/pip install --quiet --config-settings=cmake.define.SMIC_SANITIZE=ON \
	    --config-settings=build-dir=build/asan ".[test]"
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" \
	    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    .venv-asan/bin/python -m pytest -q -p no:cacheprovider

# libFuzzer targets of the file format (cpp/fuzz/), 60 s each under ASan/UBSan, seeded from
# tests/golden. Needs clang: apt-get install -y clang libclang-rt-14-dev.
fuzz:
	cpp/fuzz/run.sh

clean:
	rm -rf $(VENV) .venv-asan build
