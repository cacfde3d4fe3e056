"""Fuzz Twilio's signed webhooks: any form fields.

    .venv/bin/python scripts/fuzz/twilio_webhook.py -max_total_time=600 [CORPUS_DIR]

(libFuzzer options; see scripts/fuzz/_harness.py.)"""

from _harness import fuzz

if __name__ == "__main__":
    fuzz("test_webhooks", "test_twilio_calls_get_twiml_or_a_clear_4xx")
