"""Fuzz the answer parser (parse_answer, normalize, keyword): any reply, any question.

    .venv/bin/python scripts/fuzz/answer_parser.py -max_total_time=600 [CORPUS_DIR]

(libFuzzer options; see scripts/fuzz/_harness.py.)"""

from _harness import fuzz

if __name__ == "__main__":
    fuzz("test_answers", "test_any_reply_is_an_answer_or_a_reason")
