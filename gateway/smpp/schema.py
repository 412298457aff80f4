"""SMPP 3.4 body layouts and TLV types: the one table both codec paths are checked against.

Each command's mandatory body is a tuple of :class:`Field`; optional parameters (TLVs) are typed
by tag in :data:`TLVS`. The layout walker here validates a body before anything parses it
(smpplib parses a C-string without its NUL into shifted garbage and raises ``struct.error`` on
short input), and it also encodes and decodes the PDUs smpplib does not know (outbind,
cancel_sm, replace_sm, submit_multi).

Maximum lengths of C-strings count the terminating NUL, as SMPP 3.4 section 4 does.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.smpp.errors import LocalProtocolError, RemoteProtocolError
from gateway.smpp.pdu import Status


@dataclass(frozen=True, slots=True)
class Field:
    """One mandatory parameter: ``kind`` is ``c`` (C-string), ``i`` (1 octet int), ``sm``
    (sm_length + short_message) or ``raw`` (the rest of the body, kept as bytes)."""

    name: str
    kind: str
    max: int = 0


@dataclass(frozen=True, slots=True)
class TlvType:
    """A known TLV: ``kind`` is ``int`` (``size`` octets), ``cstr`` (NUL-terminated, ``max``
    counting the NUL), ``ostr`` (octets, ``min``..``max``) or ``flag`` (no value)."""

    name: str
    tag: int
    kind: str
    size: int = 0
    min: int = 0
    max: int = 0xFFFF


def _c(name: str, size: int) -> Field:
    return Field(name, "c", size)


def _i(name: str) -> Field:
    return Field(name, "i")


_BIND = (
    _c("system_id", 16),
    _c("password", 9),
    _c("system_type", 13),
    _i("interface_version"),
    _i("addr_ton"),
    _i("addr_npi"),
    _c("address_range", 41),
)
_SM = (
    _c("service_type", 6),
    _i("source_addr_ton"),
    _i("source_addr_npi"),
    _c("source_addr", 21),
    _i("dest_addr_ton"),
    _i("dest_addr_npi"),
    _c("destination_addr", 21),
    _i("esm_class"),
    _i("protocol_id"),
    _i("priority_flag"),
    _c("schedule_delivery_time", 17),
    _c("validity_period", 17),
    _i("registered_delivery"),
    _i("replace_if_present_flag"),
    _i("data_coding"),
    _i("sm_default_msg_id"),
    Field("short_message", "sm", 254),
)
_MESSAGE_ID = (_c("message_id", 65),)
_RAW = (Field("body", "raw"),)

# Address fields are capped at 21 octets everywhere (smpplib truncates data_sm and
# alert_notification addresses at 21, so a longer one could not be encoded without loss).
LAYOUTS: Final[Mapping[str, tuple[Field, ...]]] = {
    "generic_nack": (),
    "bind_receiver": _BIND,
    "bind_transmitter": _BIND,
    "bind_transceiver": _BIND,
    "bind_receiver_resp": (_c("system_id", 16),),
    "bind_transmitter_resp": (_c("system_id", 16),),
    "bind_transceiver_resp": (_c("system_id", 16),),
    "outbind": (_c("system_id", 16), _c("password", 9)),
    "unbind": (),
    "unbind_resp": (),
    "enquire_link": (),
    "enquire_link_resp": (),
    "submit_sm": _SM,
    "submit_sm_resp": _MESSAGE_ID,
    "deliver_sm": _SM,
    "deliver_sm_resp": _MESSAGE_ID,
    "data_sm": (
        _c("service_type", 6),
        _i("source_addr_ton"),
        _i("source_addr_npi"),
        _c("source_addr", 21),
        _i("dest_addr_ton"),
        _i("dest_addr_npi"),
        _c("destination_addr", 21),
        _i("esm_class"),
        _i("registered_delivery"),
        _i("data_coding"),
    ),
    "data_sm_resp": _MESSAGE_ID,
    "query_sm": (
        _c("message_id", 65),
        _i("source_addr_ton"),
        _i("source_addr_npi"),
        _c("source_addr", 21),
    ),
    "query_sm_resp": (
        _c("message_id", 65),
        _c("final_date", 17),
        _i("message_state"),
        _i("error_code"),
    ),
    "cancel_sm": (
        _c("service_type", 6),
        _c("message_id", 65),
        _i("source_addr_ton"),
        _i("source_addr_npi"),
        _c("source_addr", 21),
        _i("dest_addr_ton"),
        _i("dest_addr_npi"),
        _c("destination_addr", 21),
    ),
    "cancel_sm_resp": (),
    "replace_sm": (
        _c("message_id", 65),
        _i("source_addr_ton"),
        _i("source_addr_npi"),
        _c("source_addr", 21),
        _c("schedule_delivery_time", 17),
        _c("validity_period", 17),
        _i("registered_delivery"),
        _i("sm_default_msg_id"),
        Field("short_message", "sm", 254),
    ),
    "replace_sm_resp": (),
    "submit_multi": _RAW,
    "submit_multi_resp": _RAW,
    "alert_notification": (
        _i("source_addr_ton"),
        _i("source_addr_npi"),
        _c("source_addr", 21),
        _i("esme_addr_ton"),
        _i("esme_addr_npi"),
        _c("esme_addr", 21),
    ),
}

#: Mandatory fields whose default is not 0 / "" / b"".
DEFAULTS: Final[Mapping[str, Any]] = {"interface_version": 0x34}

#: The status to answer when a C-string is longer than SMPP allows (RSYSERR for the rest).
FIELD_STATUS: Final[Mapping[str, int]] = {
    "system_id": Status.ESME_RINVSYSID,
    "password": Status.ESME_RINVPASWD,
    "system_type": Status.ESME_RINVSYSTYP,
    "service_type": Status.ESME_RINVSERTYP,
    "source_addr": Status.ESME_RINVSRCADR,
    "destination_addr": Status.ESME_RINVDSTADR,
    "schedule_delivery_time": Status.ESME_RINVSCHED,
    "validity_period": Status.ESME_RINVEXPIRY,
    "message_id": Status.ESME_RINVMSGID,
}


def _int(name: str, tag: int, size: int) -> TlvType:
    return TlvType(name, tag, "int", size=size)


# Types follow SMPP 3.4 section 5.3.2, except ussd_service_op and its_session_info which the
# spec calls octet strings but which are numbers to everyone (smpplib included).
_TLV_LIST = (
    _int("dest_addr_subunit", 0x0005, 1),
    _int("dest_network_type", 0x0006, 1),
    _int("dest_bearer_type", 0x0007, 1),
    _int("dest_telematics_id", 0x0008, 2),
    _int("source_addr_subunit", 0x000D, 1),
    _int("source_network_type", 0x000E, 1),
    _int("source_bearer_type", 0x000F, 1),
    _int("source_telematics_id", 0x0010, 1),
    _int("qos_time_to_live", 0x0017, 4),
    _int("payload_type", 0x0019, 1),
    TlvType("additional_status_info_text", 0x001D, "cstr", max=256),
    TlvType("receipted_message_id", 0x001E, "cstr", max=65),
    _int("ms_msg_wait_facilities", 0x0030, 1),
    _int("privacy_indicator", 0x0201, 1),
    TlvType("source_subaddress", 0x0202, "ostr", min=2, max=23),
    TlvType("dest_subaddress", 0x0203, "ostr", min=2, max=23),
    _int("user_message_reference", 0x0204, 2),
    _int("user_response_code", 0x0205, 1),
    _int("source_port", 0x020A, 2),
    _int("destination_port", 0x020B, 2),
    _int("sar_msg_ref_num", 0x020C, 2),
    _int("language_indicator", 0x020D, 1),
    _int("sar_total_segments", 0x020E, 1),
    _int("sar_segment_seqnum", 0x020F, 1),
    _int("sc_interface_version", 0x0210, 1),
    _int("callback_num_pres_ind", 0x0302, 1),
    TlvType("callback_num_atag", 0x0303, "ostr", max=65),
    _int("number_of_messages", 0x0304, 1),
    TlvType("callback_num", 0x0381, "ostr", min=4, max=19),
    _int("dpf_result", 0x0420, 1),
    _int("set_dpf", 0x0421, 1),
    _int("ms_availability_status", 0x0422, 1),
    TlvType("network_error_code", 0x0423, "ostr", min=3, max=3),
    TlvType("message_payload", 0x0424, "ostr"),
    _int("delivery_failure_reason", 0x0425, 1),
    _int("more_messages_to_send", 0x0426, 1),
    _int("message_state", 0x0427, 1),
    _int("ussd_service_op", 0x0501, 1),
    _int("display_time", 0x1201, 1),
    _int("sms_signal", 0x1203, 2),
    _int("ms_validity", 0x1204, 1),
    TlvType("alert_on_message_delivery", 0x130C, "flag", max=0),
    _int("its_reply_type", 0x1380, 1),
    _int("its_session_info", 0x1383, 2),
)
TLVS: Final[Mapping[str, TlvType]] = {t.name: t for t in _TLV_LIST}
TLVS_BY_TAG: Final[Mapping[int, TlvType]] = {t.tag: t for t in _TLV_LIST}

_INT_FORMATS: Final[Mapping[int, struct.Struct]] = {
    1: struct.Struct(">B"),
    2: struct.Struct(">H"),
    4: struct.Struct(">L"),
}
TLV_HEADER: Final = struct.Struct(">HH")


def _remote(message: str, status: int) -> RemoteProtocolError:
    return RemoteProtocolError(message, status=status)


def scan_body(command: str, body: bytes, layout: tuple[Field, ...]) -> tuple[dict[str, Any], int]:
    """Check and read the mandatory part of ``body``; return the values and where TLVs start.

    A response with an empty body (SMPP leaves it out when command_status is not 0) reads as
    the defaults.
    """
    params: dict[str, Any] = {}
    n = len(body)
    if n == 0 and (command.endswith("_resp") or command == "generic_nack"):
        for f in layout:
            params[f.name] = default_for(f)
        return params, 0
    pos = 0
    for f in layout:
        kind = f.kind
        if kind == "c":
            end = body.find(b"\x00", pos, pos + f.max)
            if end < 0:
                if body.find(b"\x00", pos) < 0:
                    raise _remote(f"{command}: {f.name} runs past the end", Status.ESME_RINVCMDLEN)
                status = FIELD_STATUS.get(f.name, Status.ESME_RSYSERR)
                raise _remote(f"{command}: {f.name} longer than {f.max - 1}", status)
            params[f.name] = body[pos:end].decode("latin-1")
            pos = end + 1
        elif kind == "i":
            if pos >= n:
                raise _remote(f"{command}: body ends before {f.name}", Status.ESME_RINVCMDLEN)
            params[f.name] = body[pos]
            pos += 1
        elif kind == "sm":
            if pos >= n:
                raise _remote(f"{command}: body ends before sm_length", Status.ESME_RINVCMDLEN)
            length = body[pos]
            pos += 1
            if length > f.max or pos + length > n:
                raise _remote(
                    f"{command}: sm_length {length} exceeds the PDU", Status.ESME_RINVMSGLEN
                )
            params[f.name] = body[pos : pos + length]
            pos += length
        else:  # raw
            params[f.name] = body[pos:]
            pos = n
    return params, pos


def default_for(f: Field) -> Any:
    if f.name in DEFAULTS:
        return DEFAULTS[f.name]
    if f.kind == "c":
        return ""
    if f.kind == "i":
        return 0
    return b""


def split_tlvs(command: str, body: bytes, pos: int) -> list[tuple[int, bytes]]:
    """The TLV stream from ``pos`` as (tag, value) pairs; a broken stream is RINVOPTPARSTREAM."""
    out: list[tuple[int, bytes]] = []
    n = len(body)
    while pos < n:
        if n - pos < 4:
            raise _remote(
                f"{command}: {n - pos} stray octets after TLVs", Status.ESME_RINVOPTPARSTREAM
            )
        tag, length = TLV_HEADER.unpack_from(body, pos)
        pos += 4
        if pos + length > n:
            raise _remote(
                f"{command}: TLV 0x{tag:04x} length {length} exceeds the PDU",
                Status.ESME_RINVOPTPARSTREAM,
            )
        out.append((tag, body[pos : pos + length]))
        pos += length
    return out


def decode_tlv(command: str, t: TlvType, value: bytes) -> Any:
    """A known TLV's value as int / str / bytes / True; a wrong length is RINVPARLEN."""
    n = len(value)
    if t.kind == "int":
        if n != t.size:
            raise _remote(
                f"{command}: {t.name} has length {n}, not {t.size}", Status.ESME_RINVPARLEN
            )
        return int.from_bytes(value, "big")
    if t.kind == "cstr":
        if n == 0 or n > t.max:
            raise _remote(f"{command}: {t.name} has length {n}", Status.ESME_RINVPARLEN)
        if value[-1] != 0 or value.find(b"\x00") != n - 1:
            raise _remote(
                f"{command}: {t.name} is not one NUL-terminated string", Status.ESME_RINVOPTPARAMVAL
            )
        return value[:-1].decode("latin-1")
    if t.kind == "ostr":
        if n < t.min or n > t.max:
            raise _remote(f"{command}: {t.name} has length {n}", Status.ESME_RINVPARLEN)
        return bytes(value)
    if n != 0:
        raise _remote(f"{command}: flag {t.name} carries a value", Status.ESME_RINVPARLEN)
    return True


def _local(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, status=Status.ESME_RSYSERR)


def check_cstring(command: str, name: str, value: Any, max_len: int, *, ascii_only: bool) -> str:
    """Refuse what smpplib would truncate or mangle: too long, embedded NUL, not latin-1."""
    if not isinstance(value, str):
        raise _local(f"{command}: {name} must be str, not {type(value).__name__}")
    if len(value) >= max_len:
        raise _local(f"{command}: {name} is {len(value)} characters, at most {max_len - 1}")
    if "\x00" in value:
        raise _local(f"{command}: {name} contains NUL")
    limit = "\x7f" if ascii_only else "\xff"
    if value and max(value) > limit:
        raise _local(
            f"{command}: {name} has characters outside {'ASCII' if ascii_only else 'latin-1'}"
        )
    return value


def check_int(command: str, name: str, value: Any, size: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _local(f"{command}: {name} must be int, not {type(value).__name__}")
    if not 0 <= value < 1 << (8 * size):
        raise _local(f"{command}: {name}={value} does not fit {size} octet(s)")
    return value


def check_octets(command: str, name: str, value: Any, lo: int, hi: int) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _local(f"{command}: {name} must be bytes, not {type(value).__name__}")
    data = bytes(value)
    if not lo <= len(data) <= hi:
        raise _local(f"{command}: {name} is {len(data)} octets, allowed {lo}..{hi}")
    return data


def encode_tlv(command: str, t: TlvType, value: Any) -> bytes:
    """One TLV on the wire; empty strings and octet strings are left out, as smpplib does."""
    if t.kind == "int":
        v = check_int(command, t.name, value, t.size)
        return TLV_HEADER.pack(t.tag, t.size) + _INT_FORMATS[t.size].pack(v)
    if t.kind == "cstr":
        s = check_cstring(command, t.name, value, t.max, ascii_only=True)
        if not s:
            return b""
        data = s.encode("ascii") + b"\x00"
        return TLV_HEADER.pack(t.tag, len(data)) + data
    if t.kind == "ostr":
        if isinstance(value, bytes | bytearray) and not value:
            return b""
        data = check_octets(command, t.name, value, t.min, t.max)
        return TLV_HEADER.pack(t.tag, len(data)) + data
    if value is not True:
        raise _local(f"{command}: flag {t.name} must be True when present")
    return TLV_HEADER.pack(t.tag, 0)


def encode_extra(command: str, extra: tuple[tuple[int, bytes], ...]) -> bytes:
    out = []
    for tag, value in extra:
        check_int(command, "extra TLV tag", tag, 2)
        data = check_octets(command, f"TLV 0x{tag:04x}", value, 0, 0xFFFF)
        out.append(TLV_HEADER.pack(tag, len(data)) + data)
    return b"".join(out)


def encode_mandatory(command: str, layout: tuple[Field, ...], params: Mapping[str, Any]) -> bytes:
    """The mandatory part of a body from ``params`` (missing fields take their defaults)."""
    out = bytearray()
    for f in layout:
        value = params.get(f.name)
        if value is None:
            value = default_for(f)
        if f.kind == "c":
            out += check_cstring(command, f.name, value, f.max, ascii_only=False).encode("latin-1")
            out.append(0)
        elif f.kind == "i":
            out.append(check_int(command, f.name, value))
        elif f.kind == "sm":
            data = check_octets(command, f.name, value, 0, f.max)
            out.append(len(data))
            out += data
        else:
            out += check_octets(command, f.name, value, 0, 0xFFFF)
    return bytes(out)


def decode_tlvs(
    command: str, tlvs: list[tuple[int, bytes]], params: dict[str, Any]
) -> tuple[tuple[int, bytes], ...]:
    """Put known TLVs into ``params`` by name; return the unknown ones, in order, verbatim."""
    extra: list[tuple[int, bytes]] = []
    for tag, value in tlvs:
        t = TLVS_BY_TAG.get(tag)
        if t is None:
            extra.append((tag, value))
        else:
            params[t.name] = decode_tlv(command, t, value)
    return tuple(extra)


def decode_generic(
    command: str, body: bytes
) -> tuple[dict[str, Any], tuple[tuple[int, bytes], ...]]:
    """Decode a body from the tables alone (the path for PDUs smpplib does not know)."""
    params, pos = scan_body(command, body, LAYOUTS[command])
    extra = decode_tlvs(command, split_tlvs(command, body, pos), params)
    return params, extra


def encode_generic(
    command: str, params: Mapping[str, Any], extra: tuple[tuple[int, bytes], ...]
) -> bytes:
    """Encode a body from the tables alone."""
    layout = LAYOUTS[command]
    body = [encode_mandatory(command, layout, params)]
    names = {f.name for f in layout}
    for name, value in params.items():
        if name in names or value is None:
            continue
        t = TLVS.get(name)
        if t is None:
            raise _local(f"{command}: unknown parameter {name!r}")
        body.append(encode_tlv(command, t, value))
    body.append(encode_extra(command, extra))
    return b"".join(body)
