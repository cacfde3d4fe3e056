"""Run one of the Hypothesis fuzz tests (tests/fuzz/) under atheris: coverage-guided.

Hypothesis turns atheris' bytes into the test's input (``fuzz_one_input``), so a harness
needs no decoder of its own and checks the same contract as the CI run. A failure stops
the run with the test's traceback; atheris writes the input to ``crash-<sha1>`` and
Hypothesis keeps the example in ``.hypothesis/``, so ``pytest tests/fuzz`` replays it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout: the tests package


def fuzz(module: str, test: str) -> None:
    """Fuzz ``tests.fuzz.<module>.<test>`` with libFuzzer's command line (``sys.argv``)."""
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: .venv/bin/pip install -e '.[fuzz]'")
    from hypothesis import settings

    # Only the engine is instrumented: coverage of Hypothesis itself would steer nothing.
    with atheris.instrument_imports(include=["callcenter"]):
        importlib.import_module("tests.fuzz.conftest")  # registers the "fuzz" profile
        settings.load_profile("fuzz")
        target: Any = getattr(importlib.import_module(f"tests.fuzz.{module}"), test)
    atheris.Setup(sys.argv, target.hypothesis.fuzz_one_input)
    atheris.Fuzz()
