"""Codec throughput: PDUs/s of our codec (fast path and smpplib path), bare smpplib, and a raw
struct ceiling measured in the same run.

    .venv/bin/python bench/codec.py            # default 20000 PDUs per cell, best of 3
    .venv/bin/python bench/codec.py -n 100000

"raw struct" packs and unpacks the same submit_sm/deliver_sm with no validation, no Pdu and no
dict: the most Python can do for this layout, the ceiling the fast path is measured against.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smpplib import smpp as sm_smpp

from gateway.smpp import codec, reference
from gateway.smpp.pdu import Pdu

HEADER = struct.Struct(">LLLL")
SM_FORMAT = b"%s\x00%c%c%s\x00%c%c%s\x00%c%c%c%s\x00%s\x00%c%c%c%c%c%s"

TEXT = b"Twoje haslo tymczasowe do Idea24 on-line: 4F7K2Q. Wazne 5 minut."
SUBMIT = Pdu(
    "submit_sm",
    12345,
    0,
    {
        "source_addr_ton": 5,
        "source_addr": "IDEA24",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": "48600000001",
        "registered_delivery": 1,
        "data_coding": 0,
        "short_message": TEXT,
    },
)
DELIVER = Pdu(
    "deliver_sm",
    777,
    0,
    {
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": "48600000001",
        "destination_addr": "*100#",
        "short_message": b"*100#",
        "ussd_service_op": 1,
        "its_session_info": 0x0102,
    },
)
RECEIPT = Pdu(
    "deliver_sm",
    778,
    0,
    {
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": "48600000001",
        "destination_addr": "IDEA24",
        "esm_class": 0x04,
        "short_message": b"id:0A1B2C3D4E sub:001 dlvrd:001 submit date:2611252210 "
        b"done date:2611252210 stat:DELIVRD err:000 text:",
        "receipted_message_id": "0A1B2C3D4E",
        "message_state": 2,
    },
)
SUBMIT_RESP = Pdu("submit_sm_resp", 12345, 0, {"message_id": "0A1B2C3D4E"})
ENQUIRE = Pdu("enquire_link", 9)


class _Client:
    sequence = 0

    def next_sequence(self) -> int:
        return 0


CLIENT = _Client()


def raw_encode_sm(seq: int) -> bytes:
    body = SM_FORMAT % (
        b"", 5, 0, b"IDEA24", 1, 1, b"48600000001", 0, 0, 0, b"", b"", 1, 0, 0, 0, len(TEXT), TEXT,
    )  # fmt: skip
    return HEADER.pack(16 + len(body), 4, 0, seq) + body


def raw_decode_sm(frame: bytes) -> tuple[Any, ...]:
    find = frame.find
    e1 = find(0, 16)
    e2 = find(0, e1 + 3)
    e3 = find(0, e2 + 3)
    e4 = find(0, e3 + 4)
    e5 = find(0, e4 + 1)
    n = frame[e5 + 5]
    return (
        HEADER.unpack_from(frame),
        frame[16:e1],
        frame[e1 + 1],
        frame[e1 + 2],
        frame[e1 + 3 : e2],
        frame[e2 + 1],
        frame[e2 + 2],
        frame[e2 + 3 : e3],
        frame[e3 + 1 : e3 + 4],
        frame[e3 + 4 : e4],
        frame[e4 + 1 : e5],
        frame[e5 + 1 : e5 + 5],
        frame[e5 + 6 : e5 + 6 + n],
    )


def bare_smpplib_encode(pdu: Pdu) -> Callable[[], bytes]:
    params = codec.decode(codec.encode(pdu)).params

    def run() -> bytes:
        obj = sm_smpp.make_pdu(pdu.command, client=CLIENT)
        obj.sequence = pdu.sequence
        for name, value in params.items():
            setattr(obj, name, value)
        data: bytes = obj.generate()
        return data

    return run


def bare_smpplib_decode(frame: bytes) -> Callable[[], Any]:
    return lambda: sm_smpp.parse_pdu(frame, client=CLIENT, allow_unknown_opt_params=True)


def rate(fn: Callable[[], Any], n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="PDUs per measurement")
    args = parser.parse_args()
    n = args.n

    submit_frame = codec.encode(SUBMIT)
    assert raw_encode_sm(SUBMIT.sequence) == submit_frame, "raw ceiling must build the same bytes"
    rows: list[tuple[str, str, float]] = []
    rows.append(("raw struct ceiling", "submit_sm enc", rate(lambda: raw_encode_sm(1), n)))
    rows.append(
        ("raw struct ceiling", "submit_sm dec", rate(lambda: raw_decode_sm(submit_frame), n))
    )
    for label, pdu in (
        ("submit_sm", SUBMIT),
        ("deliver_sm ussd", DELIVER),
        ("deliver_sm receipt", RECEIPT),
        ("submit_sm_resp", SUBMIT_RESP),
        ("enquire_link", ENQUIRE),
    ):
        frame = codec.encode(pdu)
        cmd = label
        rows.append(("codec (fast path)", f"{cmd} enc", rate(partial(codec.encode, pdu), n)))
        rows.append(("codec (fast path)", f"{cmd} dec", rate(partial(codec.decode, frame), n)))
        rows.append(("codec (smpplib path)", f"{cmd} enc", rate(partial(reference.encode, pdu), n)))
        rows.append(
            ("codec (smpplib path)", f"{cmd} dec", rate(partial(reference.decode, frame), n))
        )
        if label != "deliver_sm ussd":  # bare smpplib cannot parse ussd_service_op here (#104)
            bare = bare_smpplib_encode(pdu)
            assert bare() == frame, f"{label}: bare smpplib packs different bytes"
            rows.append(("bare smpplib", f"{cmd} enc", rate(bare, n)))
            rows.append(("bare smpplib", f"{cmd} dec", rate(bare_smpplib_decode(frame), n)))

    print(f"Python {sys.version.split()[0]}, {n} PDUs per cell, best of 3")
    print(f"{'path':<22} {'operation':<24} {'PDUs/s':>10}")
    for path, op, value in rows:
        print(f"{path:<22} {op:<24} {value:>10,.0f}")


if __name__ == "__main__":
    main()
