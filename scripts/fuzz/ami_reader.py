"""Fuzz the AMI reader: framing, cut anywhere, repeated headers.

    .venv/bin/python scripts/fuzz/ami_reader.py -max_total_time=600 [CORPUS_DIR]

(libFuzzer options; see scripts/fuzz/_harness.py.)"""

from _harness import fuzz

if __name__ == "__main__":
    fuzz("test_telephony", "test_ami_reader_never_raises_and_framing_ignores_tcp_cuts")
