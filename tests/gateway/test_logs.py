from __future__ import annotations

import io
import json
import logging

from gateway.logs import mask_msisdn, mask_numbers_in, setup_logging


def test_mask_msisdn_keeps_prefix_and_last_two() -> None:
    assert mask_msisdn("48600000001") == "4860*****01"
    assert "600000" not in mask_msisdn("48600000001")


def test_free_text_numbers_are_masked() -> None:
    assert "600123456" not in mask_numbers_in("sms from 48600123456 handled")


def test_json_lines_mask_msisdn_and_drop_secrets() -> None:
    stream = io.StringIO()
    setup_logging("DEBUG", "json", stream)
    try:
        logging.getLogger("t").info(
            "turn for 48600000001",
            extra={"msisdn": "48600000001", "password": "Zq8PxkT2", "state": "x"},
        )
    finally:
        logging.getLogger().handlers.clear()
    entry = json.loads(stream.getvalue())
    assert entry["state"] == "x"
    assert "password" not in entry
    assert "48600000001" not in stream.getvalue()
    assert "Zq8PxkT2" not in stream.getvalue()
