"""Fuzz a FastAGI connection: the environment, then the replies to a call's commands.

    .venv/bin/python scripts/fuzz/agi_wire.py -max_total_time=600 [CORPUS_DIR]

(libFuzzer options; see scripts/fuzz/_harness.py.)"""

from _harness import fuzz

if __name__ == "__main__":
    fuzz("test_telephony", "test_fastagi_session_raises_only_agi_errors")
