"""Per-turn CPU of the SMPP inbound side, receipts and submit_sm building: micro-benchmarks.

    .venv/bin/python bench/inbound.py             # best of 5, microseconds per operation
    .venv/bin/python bench/inbound.py --against /tmp/base   # the same cells on another tree
                                                  # (e.g. ``git archive`` of an older commit),
                                                  # interleaved, to compare before/after

Cells (one SMS turn at ~1,000 turns/s pays each about once):

* ``decode deliver_sm mo`` / ``decode deliver_sm receipt``: :func:`gateway.smpp.codec.decode` of a
  frame.
* ``inbound receipt``: a decoded receipt deliver_sm (TLVs and text) through
  :class:`gateway.esme.inbound.InboundProcessor` to its sink, as the link hands it over.
* ``inbound mo``: a plain MO (``PAKIET``) through the same processor (dedup, reassembly).
* ``tracker 10k sent+receipt``: :class:`gateway.outbox.base.DeliveryTracker` ``sent`` then
  ``receipt`` for 10,000 hex ids, per id.
* ``encode_message pl 120``: :func:`gateway.sms.text.encode_message` of a 120-character Polish
  reply, ``ucs2`` and ``transliterate`` policies.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

REPLY = (
    "Twój pakiet internetowy: pozostało 3,2 GB z 10 GB. Ważny do 30.11. "
    "Dokup więcej: wyślij DODAJ 5 na 8024. Dziękujemy!"
)
RECEIPT_TEXT = (
    b"id:0A1B2C3D4E sub:001 dlvrd:001 submit date:2611252210 "
    b"done date:2611252210 stat:DELIVRD err:000 text:"
)


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never really suspends (no event loop cost in the figure)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("coroutine suspended")


def cells() -> dict[str, tuple[Callable[[], Any], int]]:
    """Name → (one operation, operations it stands for)."""
    from gateway.esme.inbound import InboundProcessor
    from gateway.outbox.base import DeliveryTracker
    from gateway.smpp import codec
    from gateway.smpp.pdu import Pdu
    from gateway.sms import text
    from gateway.sms.events import ReceiptEvent

    receipt_pdu = Pdu(
        "deliver_sm",
        778,
        0,
        {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": "48600000001",
            "destination_addr": "IDEA24",
            "esm_class": 0x04,
            "short_message": RECEIPT_TEXT,
            "receipted_message_id": "0A1B2C3D4E",
            "message_state": 2,
        },
    )
    mo_pdu = Pdu(
        "deliver_sm",
        779,
        0,
        {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": "48600000001",
            "destination_addr": "8024",
            "short_message": b"PAKIET",
        },
    )
    receipt_frame = codec.encode(receipt_pdu)
    mo_frame = codec.encode(mo_pdu)

    async def sink(event: Any) -> None:
        return None

    receipts_in = InboundProcessor(sink)
    now = [0.0]
    mo_in = InboundProcessor(sink, clock=lambda: now[0])

    def mo() -> None:
        now[0] += 100.0  # past the redelivery window: every copy is a new turn
        _run(mo_in(mo_pdu))

    ids = [format(0x1A2B3C0000 + i, "X") for i in range(10_000)]
    events = []
    for i, mid in enumerate(ids):
        params = dict(receipt_pdu.params, receipted_message_id=mid)
        seen: list[Any] = []

        async def keep(event: Any, seen: list[Any] = seen) -> None:
            seen.append(event)

        _run(InboundProcessor(keep)(Pdu("deliver_sm", i, 0, params)))
        assert isinstance(seen[0], ReceiptEvent)
        events.append(seen[0])

    def tracker() -> None:
        t = DeliveryTracker()
        for i, mid in enumerate(ids):
            t.sent(str(i), "48600000001", [mid])
        for event in events:
            t.receipt(event)
        assert t.delivered == len(ids)

    return {
        "decode deliver_sm mo": (lambda: codec.decode(mo_frame), 1),
        "decode deliver_sm receipt": (lambda: codec.decode(receipt_frame), 1),
        "inbound receipt": (lambda: _run(receipts_in(receipt_pdu)), 1),
        "inbound mo": (mo, 1),
        "tracker 10k sent+receipt": (tracker, len(ids)),
        "encode_message pl 120 ucs2": (lambda: text.encode_message(REPLY, policy="ucs2"), 1),
        "encode_message pl 120 translit": (
            lambda: text.encode_message(REPLY, policy="transliterate"),
            1,
        ),
    }


def measure(repeats: int, budget: float) -> dict[str, float]:
    """Microseconds per operation, best of ``repeats`` runs of about ``budget`` seconds each."""
    out = {}
    for name, (fn, per) in cells().items():
        start = time.process_time()
        fn()
        one = max(time.process_time() - start, 1e-7)
        loops = max(1, int(budget / one))
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            for _ in range(loops):
                fn()
            best = min(best, (time.process_time() - start) / loops)
        out[name] = best / per * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per timing")
    parser.add_argument("--against", type=Path, help="another tree to measure, interleaved")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (--against)")
    args = parser.parse_args()
    trees = [("this", ROOT)] + ([("against", args.against)] if args.against else [])
    best: dict[str, dict[str, float]] = {label: {} for label, _ in trees}
    for _ in range(args.rounds if args.against else 1):
        for label, tree in trees:
            lines = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    str(tree),
                    str(Path(__file__).resolve()),
                    str(args.repeats),
                    str(args.budget),
                ],
                check=True,
                capture_output=True,
                cwd=tree,
                text=True,
            ).stdout.splitlines()
            for line in lines:
                name, field = line.split("\t")
                best[label][name] = min(best[label].get(name, float("inf")), float(field))
    print(f"Python {sys.version.split()[0]}, µs per operation, best of {args.repeats}")
    head = f"{'cell':<34} {'this':>9}"
    if args.against:
        head += f" {'against':>9} {'speed-up':>9}"
    print(head)
    for name, value in best["this"].items():
        row = f"{name:<34} {value:>9.2f}"
        if args.against:
            other = best["against"][name]
            row += f" {other:>9.2f} {other / value:>8.2f}x"
        print(row)


# Runs the cells of this file (argv[2]) against the tree given as argv[1], in a fresh process.
_CHILD = """
import sys, importlib.util
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("bench_inbound", sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
for name, value in mod.measure(int(sys.argv[3]), float(sys.argv[4])).items():
    print(f"{name}\\t{value}")
"""


if __name__ == "__main__":
    main()
