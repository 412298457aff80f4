"""USSD between the simulated handsets and the ESMEs: dialling, answering, the ESME's screens.

The sessions themselves (numbers, timeouts, replies awaited) are :mod:`simulator.ussd`; this
module turns a handset's input into the deliver_sm the ESME gets, an ESME's submit_sm into the
screen the handset shows, and records both for the handset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.smpp.pdu import Pdu, UssdOp
from gateway.sms.decoding import Body, decode_body
from gateway.sms.text import encode_ussd
from simulator.delivery import Delivery
from simulator.store import HandsetStore
from simulator.ussd import UssdReply, UssdSessions, UssdTimeout, is_dial_string


class UssdError(ValueError):
    """A USSD answer with no open session (the handset must dial a code like ``*100#`` first)."""


class UssdNetwork:
    """The network side of USSD for every handset, routing deliver_sm through ``route``."""

    def __init__(
        self,
        sessions: UssdSessions,
        store: HandsetStore,
        route: Callable[[Delivery], None],
        now: Callable[[], float],
    ) -> None:
        self.sessions = sessions
        self._store = store
        self._route = route
        self._now = now

    async def dial(self, msisdn: str, text: str, wait: float = 10.0) -> UssdReply:
        """The handset dials a code or answers the open menu; returns the network's next screen.

        Raises :class:`UssdError` for an answer with no open session and :class:`UssdTimeout`
        when no ESME answers within ``wait`` seconds.
        """
        text = text.strip()
        now = self._now()
        session = self.sessions.get(msisdn)
        if is_dial_string(text) or session is None:
            if not is_dial_string(text):
                raise UssdError("no USSD session is open: dial a code such as *100#")
            session = self.sessions.open(msisdn, text, now)
            op = UssdOp.PSSR_INDICATION
        else:
            op = UssdOp.USSR_CONFIRM
            session.last_activity = now
        reply = self.sessions.expect_reply(session)
        octets, data_coding = encode_ussd(text, max_chars=182)
        params: dict[str, Any] = {
            "service_type": "USSD",
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": msisdn,
            "dest_addr_ton": 0,
            "dest_addr_npi": 0,
            "destination_addr": session.service_code,
            "esm_class": 0,
            "data_coding": data_coding,
            "short_message": octets,
            "ussd_service_op": int(op),
            "its_session_info": session.its_session_info,
        }
        self._store.add(
            msisdn=msisdn,
            peer=session.service_code,
            direction="mo",
            kind="ussd",
            text=text,
            parts=1,
            data_coding=data_coding,
            ussd_op=int(op),
        )
        self._route(Delivery(Pdu("deliver_sm", params=params), None))
        try:
            async with asyncio.timeout(wait):
                return await reply
        except TimeoutError as exc:
            raise UssdTimeout(f"no answer to USSD {text!r} within {wait:g}s") from exc

    def cancel(self, msisdn: str) -> bool:
        """The handset pressed Cancel: the session ends on the handset's side."""
        return self.sessions.close(msisdn, UssdTimeout("cancelled by the handset")) is not None

    def from_esme(self, pdu: Pdu, op: int, message_id: str, now: float, body: Body) -> None:
        msisdn = str(pdu.get("destination_addr", ""))
        text = decode_body(body.data, body.codec)
        its = pdu.get("its_session_info")
        if isinstance(its, bytes | bytearray):
            its = int.from_bytes(its, "big")
        reply = self.sessions.network_reply(msisdn, text, op, its, now)
        self._store.add(
            msisdn=msisdn,
            peer=str(pdu.get("source_addr", "")),
            direction="mt",
            kind="ussd",
            text=text,
            parts=1,
            data_coding=int(pdu.get("data_coding", 0)),
            ussd_op=op,
            end=reply.end,
            message_ids=(message_id,),
        )

    def expire(self, now: float) -> None:
        """End idle sessions; the handset shows an empty final screen for each."""
        for ussd in self.sessions.expired(now):
            self._store.add(
                msisdn=ussd.msisdn,
                peer=ussd.service_code,
                direction="mt",
                kind="ussd",
                text="",
                parts=0,
                data_coding=0,
                end=True,
            )
