"""The benchmark scripts stay runnable: `make bench` / `make bench-quick` run every
benchmarks/bench_*.py through benchmarks/run_all.py, so each must parse its options, offer
--quick, and the runner must tell ok, skipped and failed apart. Cheap: one process prints every
script's --help; two of the fastest quick runs go for real (a few seconds each)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("bench_*.py"))

# One child runs each script's main with --help (runpy, as `python bench_x.py --help` would) and
# reports its exit code and output: imports are paid once, not 22 times.
HELP_ALL = r"""
import contextlib, io, json, runpy, sys
sys.path.insert(0, ".")
out = {}
for name in sys.argv[1:]:
    buffer = io.StringIO()
    sys.argv = [name, "--help"]
    code = None
    try:
        with contextlib.redirect_stdout(buffer):
            runpy.run_path(name, run_name="__main__")
    except SystemExit as exit:
        code = exit.code
    except Exception as error:
        code = f"{type(error).__name__}: {error}"
    out[name] = [code, buffer.getvalue()]
print(json.dumps(out))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # quick runs on one core, beside the tests
    return env


@pytest.fixture(scope="module")
def helps() -> dict[str, list]:
    result = subprocess.run([sys.executable, "-c", HELP_ALL, *SCRIPTS], cwd=BENCH, capture_output=True,
                            text=True, timeout=600, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_runner_runs_every_script() -> None:
    listed = subprocess.run([sys.executable, "run_all.py", "--list"], cwd=BENCH, capture_output=True, text=True,
                            timeout=60, check=True).stdout.split()
    assert listed == SCRIPTS and len(SCRIPTS) >= 20
    makefile = (ROOT / "Makefile").read_text()
    runner = [line for line in makefile.splitlines() if "run_all.py" in line and not line.startswith("#")]
    assert runner and all("env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" in line for line in runner)
    quick = makefile.split("\nbench-quick:", 1)[1].split("\n\n", 1)[0]
    assert "$(BENCH_RUN) --quick" in quick  # peers at their best, only in the bench commands


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_offers_quick(helps: dict[str, list], script: str) -> None:
    code, text = helps[script]
    assert code in (0, None), f"{script} --help: {code}"
    assert "--quick" in text and "CI-sized run" in text, text


def test_quick_defaults_name_real_options() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import argparse

        from _common import parse_args
    finally:
        sys.path.remove(str(BENCH))
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--setting", action="append", default=[])
    assert parse_args(parser, [], quick={"n": 100}).n == 20000
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--setting", action="append", default=[])
    args = parse_args(parser, ["--quick", "--setting", "x"], quick={"n": 100, "setting": ["q"]})
    assert (args.n, args.setting) == (100, ["x"])  # what is given explicitly wins
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    with pytest.raises(ValueError, match="nn"):
        parse_args(parser, [], quick={"nn": 100})


def _run_all(*names: str) -> subprocess.CompletedProcess:
    env = _env()
    for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(variable, None)  # the child's environment only, as `make bench` does
    return subprocess.run([sys.executable, "run_all.py", "--quick", *names], cwd=BENCH, capture_output=True,
                          text=True, timeout=900, env=env)


@pytest.mark.slow
def test_fastest_quick_runs_really_run() -> None:
    result = _run_all("bench_paper_mode", "bench_rate_vs_n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| bench_paper_mode.py | ok |" in result.stdout
    assert "| bench_rate_vs_n.py | ok |" in result.stdout
    assert "| paper atoms |" in result.stdout  # the table itself was printed
    assert "| N | dictionary |" in result.stdout


def test_no_gpu_is_a_skip_with_its_reason() -> None:
    import smic_fast

    if smic_fast.cuda_status()[0]:
        pytest.skip("a CUDA build with a GPU is here: bench_cuda_omp.py would run, not skip")
    result = _run_all("bench_cuda_omp")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "SKIPPED bench_cuda_omp.py: no CUDA GPU path" in result.stdout
    assert "| bench_cuda_omp.py | skipped: no CUDA GPU path" in result.stdout
