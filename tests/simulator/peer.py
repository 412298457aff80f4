"""smpplib's blocking client as the independent peer of the simulator (run it in a thread)."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import smpplib.client
import smpplib.command
import smpplib.consts
import smpplib.exceptions
import smpplib.pdu
import smpplib.smpp


class UssdDeliverSM(smpplib.command.DeliverSM):  # type: ignore[misc]
    """smpplib's deliver_sm lacks the ussd_service_op TLV that SMSCs send with USSD."""

    params: ClassVar[dict[str, Any]] = {
        **smpplib.command.DeliverSM.params,
        "ussd_service_op": smpplib.command.Param(type=int, size=1),
    }
    params_order = (*smpplib.command.DeliverSM.params_order, "ussd_service_op")


class UssdClient(smpplib.client.Client):  # type: ignore[misc]
    """smpplib's client reading deliver_sm with :class:`UssdDeliverSM` (nothing else changes)."""

    def read_pdu(self) -> Any:
        raw_len = self._recv_exact(4)
        raw = raw_len + self._recv_exact(int.from_bytes(raw_len, "big") - 4)
        unknown = self.allow_unknown_opt_params
        if smpplib.pdu.extract_command(raw) == "deliver_sm":
            pdu = UssdDeliverSM("deliver_sm", client=self, allow_unknown_opt_params=unknown)
            pdu.parse(raw)
        else:
            pdu = smpplib.smpp.parse_pdu(raw, client=self, allow_unknown_opt_params=unknown)
        if not pdu.is_error() and pdu.command in smpplib.consts.STATE_SETTERS:
            self.state = smpplib.consts.STATE_SETTERS[pdu.command]
        return pdu


class Peer:
    """One smpplib connection: bind, submit, read until a condition holds (bounded by ``wait``).

    ``responses`` holds successful submit_sm_resp, ``errors`` every response with an error
    status. ``on_deliver`` may return a list of submit_sm keyword dicts to send back (a tiny ESME).
    """

    def __init__(
        self,
        address: tuple[str, int],
        mode: str = "transceiver",
        system_id: str = "idea24",
        password: str = "idea24",
        on_deliver: Callable[[Any], list[dict[str, Any]] | None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.client = UssdClient(
            address[0],
            address[1],
            timeout=0.3,
            allow_unknown_opt_params=True,
            ssl_context=ssl_context,
        )
        self.mode = mode
        self.system_id = system_id
        self.password = password
        self.on_deliver = on_deliver
        self.delivered: list[Any] = []
        self.responses: list[Any] = []
        self.errors: list[Any] = []
        self.enquire_links = 0
        self.client.set_message_received_handler(self._received)
        self.client.set_message_sent_handler(self._sent)
        self.client.set_error_pdu_handler(self.errors.append)
        self._replies: list[dict[str, Any]] = []
        original = self.client._enquire_link_received

        def enquire(pdu: Any) -> None:
            self.enquire_links += 1
            original(pdu)

        self.client._enquire_link_received = enquire

    def _sent(self, pdu: Any, **_: Any) -> None:
        if not pdu.is_error():  # smpplib hands error responses to both handlers
            self.responses.append(pdu)

    def _received(self, pdu: Any, **_: Any) -> None:
        self.delivered.append(pdu)
        if self.on_deliver is not None:
            self._replies.extend(self.on_deliver(pdu) or [])

    def bind(self) -> None:
        self.client.connect()
        getattr(self.client, f"bind_{self.mode}")(system_id=self.system_id, password=self.password)

    def submit(self, **kwargs: Any) -> Any:
        kwargs.setdefault("source_addr", "2424")
        kwargs.setdefault("source_addr_ton", smpplib.consts.SMPP_TON_ALNUM)
        kwargs.setdefault("dest_addr_ton", smpplib.consts.SMPP_TON_INTL)
        kwargs.setdefault("dest_addr_npi", smpplib.consts.SMPP_NPI_ISDN)
        return self.client.send_message(**kwargs)

    def read_once(self) -> bool:
        """Handle at most one PDU; False when nothing arrived within the socket timeout."""
        try:
            self.client.read_once(auto_send_enquire_link=False)
        except TimeoutError:
            return False
        finally:
            while self._replies:
                self.submit(**self._replies.pop(0))
        return True

    def pump(self, until: Callable[[], bool], wait: float = 5.0) -> None:
        """Read PDUs until ``until()`` holds; AssertionError after ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {wait:.1f}s")
            self.read_once()

    def serve(self, stop: Callable[[], bool]) -> None:
        """Answer deliver_sm (via ``on_deliver``) until ``stop()``: a fake ESME in a thread."""
        while not stop():
            try:
                self.read_once()
            except smpplib.exceptions.ConnectionError:
                return

    def close(self) -> None:
        try:
            if self.client.state in (
                smpplib.consts.SMPP_CLIENT_STATE_BOUND_TX,
                smpplib.consts.SMPP_CLIENT_STATE_BOUND_RX,
                smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX,
            ):
                self.client.unbind()
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError):
            pass
        finally:
            self.client.disconnect()


def echo_esme(pdu: Any) -> list[dict[str, Any]]:
    """A tiny ESME: answers an SMS with ``Echo: <text>`` and runs a one-level USSD menu.

    Only to see replies travel; the real dialogs live in ``dialogs/``.
    """
    if pdu.esm_class & 0x04:  # a delivery receipt: nothing to answer
        return []
    sender = pdu.source_addr.decode()
    op = getattr(pdu, "ussd_service_op", None)
    if op is None:
        text = pdu.short_message.decode("utf-16-be" if pdu.data_coding == 8 else "latin-1")
        reply = f"Echo: {text}"
        if reply.isascii():
            return [{"destination_addr": sender, "short_message": reply.encode()}]
        sm = reply.encode("utf-16-be")
        return [{"destination_addr": sender, "short_message": sm, "data_coding": 8}]
    ussd = {
        "destination_addr": sender,
        "service_type": "USSD",
        "its_session_info": pdu.its_session_info,
    }
    if op == 1:
        menu = b"Idea24\n1 Konto\n2 Pakiet"
        return [{**ussd, "short_message": menu, "ussd_service_op": 2}]
    answer = pdu.short_message.decode()
    return [{**ussd, "short_message": f"Wybrano {answer}".encode(), "ussd_service_op": 17}]


class EsmeThread:
    """:func:`echo_esme` bound as a transceiver, served from a thread until ``stop``."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.peer = Peer(address, on_deliver=echo_esme)
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.peer.bind()
        self._thread = threading.Thread(target=self.peer.serve, args=(lambda: self._stop,))
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(5)
        self.peer.close()
