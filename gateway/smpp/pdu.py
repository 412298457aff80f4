"""SMPP 3.4 PDU values: the :class:`Pdu` record, command ids, command_status codes, TLV tags.

This module is plain data shared by the ESME (gateway) and the SMSC (simulator). Bytes are turned
into :class:`Pdu` and back only by :mod:`gateway.smpp.codec`.

Field value types in ``Pdu.params``:
- C-octet strings (system_id, password, service_type, addresses, message_id, schedule times...)
  are ``str``;
- integers (TON, NPI, esm_class, registered_delivery, data_coding, ...) are ``int``;
- ``short_message`` and ``message_payload`` are ``bytes`` (encoded by :mod:`gateway.sms.text`);
- known TLVs use smpplib's names (``ussd_service_op``, ``its_session_info``, ``sar_msg_ref_num``,
  ``receipted_message_id``, ``message_state``, ...) with int/str/bytes values as their type says.
Unknown TLVs are kept verbatim in ``Pdu.extra_tlvs`` as ``(tag, value)`` pairs.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Final

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


RESPONSE_BIT = 0x80000000
#: The 16-octet header every PDU starts with: command_length, command_id, command_status,
#: sequence_number, big-endian.
HEADER: Final = struct.Struct(">LLLL")
COMMAND_NAMES: Mapping[int, str] = {c.value: c.name.lower() for c in CommandId}
COMMAND_IDS: Mapping[str, int] = {name: cid for cid, name in COMMAND_NAMES.items()}


class Status(IntEnum):
    """command_status values used by idea24 (SMPP 3.4 section 5.1.3)."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVESMCLASS = 0x00000043
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSYSTYP = 0x00000053
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF


#: Statuses after which the same submit may succeed later (throttling, queue full, system error).
TEMPORARY_STATUSES = frozenset(
    {Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL, Status.ESME_RSYSERR, Status.ESME_RX_T_APPN}
)


class UssdOp(IntEnum):
    """ussd_service_op values (SMPP 3.4 section 5.3.2.44)."""

    PSSD_INDICATION = 0
    PSSR_INDICATION = 1
    USSR_REQUEST = 2
    USSN_REQUEST = 3
    PSSD_RESPONSE = 16
    PSSR_RESPONSE = 17
    USSR_CONFIRM = 18
    USSN_CONFIRM = 19


class MessageState(IntEnum):
    """message_state TLV values (SMPP 3.4 section 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


#: esm_class bits (treat as a bit field: real clients send 0x43 etc.).
ESM_UDHI = 0x40
ESM_DELIVERY_RECEIPT = 0x04
ESM_MESSAGE_TYPE_MASK = 0x3C
#: registered_delivery: the low two bits ask for an SMSC receipt (1 = always, 2 = on failure).
REGISTERED_DELIVERY_RECEIPT_MASK = 0x03


@dataclass(frozen=True, slots=True)
class Pdu:
    """One SMPP PDU, decoded. ``command`` is the lower-case name (``submit_sm``...)."""

    command: str
    sequence: int = 0
    status: int = 0
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    extra_tlvs: tuple[tuple[int, bytes], ...] = ()

    @property
    def command_id(self) -> int:
        return COMMAND_IDS[self.command]

    @property
    def is_response(self) -> bool:
        return self.command == "generic_nack" or self.command.endswith("_resp")

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def response(self, status: int = 0, **params: Any) -> Pdu:
        """The response to this request, carrying its sequence number."""
        return Pdu(self.command + "_resp", self.sequence, status, params)
