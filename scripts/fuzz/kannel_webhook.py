"""Fuzz Kannel's get-url and dlr-url calls: any parameters, charsets and bodies.

    .venv/bin/python scripts/fuzz/kannel_webhook.py -max_total_time=600 [CORPUS_DIR]

(libFuzzer options; see scripts/fuzz/_harness.py.)"""

from _harness import fuzz

if __name__ == "__main__":
    fuzz("test_webhooks", "test_kannel_calls_get_200_or_a_clear_4xx")
