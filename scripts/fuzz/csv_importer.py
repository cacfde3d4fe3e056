"""Fuzz the citizen register reader: rows, BOMs, encodings, quotes, NULs.

    .venv/bin/python scripts/fuzz/csv_importer.py -max_total_time=600 [CORPUS_DIR]

(libFuzzer options; see scripts/fuzz/_harness.py.)"""

from _harness import fuzz

if __name__ == "__main__":
    fuzz("test_register", "test_every_row_is_kept_or_rejected_with_a_reason")
