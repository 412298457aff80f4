"""Hand-written struct packing for the hot PDUs: submit_sm, deliver_sm, their responses,
enquire_link and enquire_link_resp.

smpplib builds an object and walks its field tables for every PDU (about 24k PDUs/s); these
functions do the same job with one bytes-format or one scan. They only take the happy path:
anything unusual (a wrong type, an over-long field, a malformed body) is handed to the reference
path (:mod:`gateway.smpp.reference`), which raises the right error. So the fast path can never
accept what the reference refuses, and the hypothesis differential tests in
``tests/gateway/smpp/test_codec_props.py`` prove the bytes and Pdus are the same as smpplib's.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, Final

from gateway.smpp import reference
from gateway.smpp.errors import LocalProtocolError, RemoteProtocolError
from gateway.smpp.pdu import COMMAND_IDS, HEADER, Pdu, Status
from gateway.smpp.schema import (
    TLV_HEADER,
    TLVS,
    TLVS_BY_TAG,
    decode_tlv,
    encode_extra,
    encode_tlv,
    split_tlvs,
)

_SM_NAMES: Final = frozenset(
    (
        "service_type",
        "source_addr_ton",
        "source_addr_npi",
        "source_addr",
        "dest_addr_ton",
        "dest_addr_npi",
        "destination_addr",
        "esm_class",
        "protocol_id",
        "priority_flag",
        "schedule_delivery_time",
        "validity_period",
        "registered_delivery",
        "replace_if_present_flag",
        "data_coding",
        "sm_default_msg_id",
        "short_message",
    )
)
_RESP_NAMES: Final = frozenset(("message_id",))
_NO_NAMES: Final[frozenset[str]] = frozenset()
_SM_FORMAT: Final = b"%s\x00%c%c%s\x00%c%c%s\x00%c%c%c%s\x00%s\x00%c%c%c%c%c%s"
_PACK_FAILURES = (TypeError, ValueError, OverflowError, AttributeError, UnicodeError, struct.error)


class _Unusual(Exception):
    """Leave the fast path; the reference path decides."""


def _tlvs(cmd: str, pdu: Pdu, keys: set[str] | frozenset[str]) -> bytes:
    """The TLV tail in the reference path's order: smpplib's own order, then ours, then extras."""
    params = pdu.params
    order = _ORDER[cmd]
    out = []
    for name in sorted(keys & order.keys(), key=order.__getitem__):
        value = params[name]
        packer = _INT_TLV_PACKERS.get(name)
        if packer is not None and type(value) is int and 0 <= value <= packer[1]:
            out.append(packer[0](value))
        elif value is not None:
            out.append(encode_tlv(cmd, TLVS[name], value))
    if not keys <= order.keys():
        for name in params:
            if name in keys and name not in order:
                value = params[name]
                packer = _INT_TLV_PACKERS.get(name)
                if packer is not None and type(value) is int and 0 <= value <= packer[1]:
                    out.append(packer[0](value))
                elif value is not None:
                    t = TLVS.get(name)
                    if t is None:
                        raise _Unusual
                    out.append(encode_tlv(cmd, t, value))
    if pdu.extra_tlvs:
        out.append(encode_extra(cmd, pdu.extra_tlvs))
    return b"".join(out)


def _decode_tlvs(
    cmd: str, frame: bytes, pos: int, params: dict[str, Any]
) -> tuple[tuple[int, bytes], ...]:
    """The TLV stream from ``pos``: known ones into ``params``, unknown ones returned."""
    n = len(frame)
    extra: list[tuple[int, bytes]] = []
    unpack = _TL.unpack_from
    stream_start = pos
    while pos < n:
        if pos + 4 > n:
            raise _broken_stream(cmd, n - pos)
        tag, length = unpack(frame, pos)
        pos += 4
        end = pos + length
        if end > n:
            raise _broken_stream(cmd, n - pos)
        t = TLVS_BY_TAG.get(tag)
        if t is None:
            extra.append((tag, frame[pos:end]))
        elif length == 1 and t.size == 1:
            params[t.name] = frame[pos]
        elif length == t.size and t.kind == "int":  # decode_tlv's happy paths, inline
            params[t.name] = int.from_bytes(frame[pos:end], "big")
        elif t.kind == "cstr" and 0 < length <= t.max and frame.find(0, pos, end) == end - 1:
            params[t.name] = frame[pos : end - 1].decode("latin-1")
        else:
            try:
                params[t.name] = decode_tlv(cmd, t, frame[pos:end])
            except RemoteProtocolError:
                split_tlvs(cmd, frame, stream_start)  # a broken stream is reported first
                raise
        pos = end
    return tuple(extra)


def _broken_stream(cmd: str, left: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"{cmd}: TLV stream broken with {left} octets left", status=Status.ESME_RINVOPTPARSTREAM
    )


def _cstr(value: Any, limit: int) -> bytes:
    data: bytes = value.encode("latin-1")
    if len(data) >= limit or b"\x00" in data:
        raise _Unusual
    return data


def _encode_sm(pdu: Pdu) -> bytes:
    params = pdu.params
    body = _sm_body(params.get)
    if body is None:
        return reference.encode(pdu)
    try:
        if len(params) > 17 or pdu.extra_tlvs or not params.keys() <= _SM_NAMES:
            if params.get("short_message") and params.get("message_payload"):
                raise _Unusual
            body += _tlvs(pdu.command, pdu, params.keys() - _SM_NAMES)
        return HEADER.pack(16 + len(body), _IDS[pdu.command], pdu.status, pdu.sequence) + body
    except (_Unusual, *_PACK_FAILURES):
        return reference.encode(pdu)


def _encode_resp(pdu: Pdu) -> bytes:
    params = pdu.params
    try:
        body = _cstr(params.get("message_id", ""), 65) + b"\x00"
        keys = params.keys() - _RESP_NAMES
        if keys or pdu.extra_tlvs:
            body += _tlvs(pdu.command, pdu, keys)
        return (
            HEADER.pack(16 + len(body), COMMAND_IDS[pdu.command], pdu.status, pdu.sequence) + body
        )
    except (_Unusual, *_PACK_FAILURES):
        return reference.encode(pdu)


def _encode_empty(pdu: Pdu) -> bytes:
    if pdu.params or pdu.extra_tlvs:
        return reference.encode(pdu)
    try:
        return HEADER.pack(16, COMMAND_IDS[pdu.command], pdu.status, pdu.sequence)
    except struct.error as exc:
        raise LocalProtocolError(f"{pdu.command}: {exc}", status=Status.ESME_RSYSERR) from exc


def _decode_sm(frame: bytes) -> Pdu:
    # Each C-string's NUL must fall within its maximum length: the find windows enforce it.
    find = frame.find
    e1 = find(0, 16, 22)  # service_type, max 6
    e2 = find(0, e1 + 3, e1 + 24) if e1 > 0 else -1  # source_addr, max 21
    e3 = find(0, e2 + 3, e2 + 24) if e2 > 0 else -1  # destination_addr, max 21
    e4 = find(0, e3 + 4, e3 + 21) if e3 > 0 else -1  # schedule_delivery_time, max 17
    e5 = find(0, e4 + 1, e4 + 18) if e4 > 0 else -1  # validity_period, max 17
    if e5 < 0:
        return reference.decode(frame)
    n = len(frame)
    start = e5 + 6
    if start > n:
        return reference.decode(frame)
    end = start + frame[e5 + 5]
    if end - start > 254 or end > n:
        return reference.decode(frame)
    # One latin-1 decode of the mandatory C-strings' span; each string is a slice of it (no
    # bytes slice + decode per field; the usually empty ones cost nothing).
    text = frame[16:e5].decode("latin-1")
    params: dict[str, Any] = {
        "service_type": text[: e1 - 16],
        "source_addr_ton": frame[e1 + 1],
        "source_addr_npi": frame[e1 + 2],
        "source_addr": text[e1 - 13 : e2 - 16],
        "dest_addr_ton": frame[e2 + 1],
        "dest_addr_npi": frame[e2 + 2],
        "destination_addr": text[e2 - 13 : e3 - 16],
        "esm_class": frame[e3 + 1],
        "protocol_id": frame[e3 + 2],
        "priority_flag": frame[e3 + 3],
        "schedule_delivery_time": text[e3 - 12 : e4 - 16],
        "validity_period": text[e4 - 15 : e5 - 16],
        "registered_delivery": frame[e5 + 1],
        "replace_if_present_flag": frame[e5 + 2],
        "data_coding": frame[e5 + 3],
        "sm_default_msg_id": frame[e5 + 4],
        "short_message": frame[start:end],
    }
    _length, command_id, status, sequence = HEADER.unpack_from(frame)
    cmd = _NAMES[command_id]
    extra = _decode_tlvs(cmd, frame, end, params) if end < n else ()
    return Pdu(cmd, sequence, status, params, extra)


def _decode_resp(frame: bytes) -> Pdu:
    _length, command_id, status, sequence = HEADER.unpack_from(frame)
    cmd = _NAMES[command_id]
    n = len(frame)
    if n == 16:
        return Pdu(cmd, sequence, status, {"message_id": ""})
    e = frame.find(0, 16, 16 + 65)
    if e < 0:
        return reference.decode(frame)
    params: dict[str, Any] = {"message_id": frame[16:e].decode("latin-1")}
    extra = _decode_tlvs(cmd, frame, e + 1, params) if e + 1 < n else ()
    return Pdu(cmd, sequence, status, params, extra)


def _decode_empty(frame: bytes) -> Pdu:
    if len(frame) != 16:
        return reference.decode(frame)
    _length, command_id, status, sequence = HEADER.unpack_from(frame)
    return Pdu(_NAMES[command_id], sequence, status, {})


_NAMES: Final = {COMMAND_IDS[n]: n for n in COMMAND_IDS}
_IDS: Final = dict(COMMAND_IDS)
_TL: Final = TLV_HEADER
_INT_FORMATS: Final = {1: "B", 2: "H", 4: "L"}


def _int_packer(tag: int, size: int) -> Callable[[int], bytes]:
    packer = struct.Struct(">HH" + _INT_FORMATS[size]).pack
    return lambda value: packer(tag, size, value)


#: Integer TLVs packed in one call (value range checked by the caller).
_INT_TLV_PACKERS: Final[Mapping[str, tuple[Callable[[int], bytes], int]]] = {
    t.name: (_int_packer(t.tag, t.size), (1 << (8 * t.size)) - 1)
    for t in TLVS.values()
    if t.kind == "int"
}
#: Per hot command, the TLVs smpplib packs and their position in its wire order.
_ORDER: Final[Mapping[str, dict[str, int]]] = {
    cmd: {name: i for i, name in enumerate(reference.DELEGATED[cmd])}
    for cmd in ("submit_sm", "deliver_sm", "submit_sm_resp", "deliver_sm_resp")
}

ENCODERS: Final[Mapping[str, Callable[[Pdu], bytes]]] = {
    "submit_sm": _encode_sm,
    "deliver_sm": _encode_sm,
    "submit_sm_resp": _encode_resp,
    "deliver_sm_resp": _encode_resp,
    "enquire_link": _encode_empty,
    "enquire_link_resp": _encode_empty,
}
DECODERS: Final[Mapping[str, Callable[[bytes], Pdu]]] = {
    "submit_sm": _decode_sm,
    "deliver_sm": _decode_sm,
    "submit_sm_resp": _decode_resp,
    "deliver_sm_resp": _decode_resp,
    "enquire_link": _decode_empty,
    "enquire_link_resp": _decode_empty,
}


def submit_sm_template(params: Mapping[str, Any]) -> bytes:
    """A whole submit_sm with sequence 0 — the same bytes :func:`gateway.smpp.codec.encode` makes —
    for a sender that numbers it by writing octets 12..16 (``SmppLink.submit_templates``).

    Encoded once per part, so a retry or a pushback resends it without encoding again. Raises
    :class:`LocalProtocolError` for what the codec refuses.
    """
    data = _plain_sm_template(params) if params.keys() <= _SM_NAMES else None
    if data is None:  # TLVs or anything unusual: the general path decides
        data = _encode_sm(Pdu("submit_sm", 0, 0, params))
    if len(data) > _MAX_PDU_LENGTH:
        raise LocalProtocolError(
            f"submit_sm: {len(data)} octets, at most {_MAX_PDU_LENGTH}", status=Status.ESME_RSYSERR
        )
    return data


_MAX_PDU_LENGTH: Final = 65536


def _plain_sm_template(params: Mapping[str, Any]) -> bytes | None:
    """:func:`_encode_sm` for mandatory fields only, without a :class:`Pdu`; None = unusual."""
    body = _sm_body(params.get)
    if body is None:
        return None
    return HEADER.pack(16 + len(body), _SUBMIT_SM_ID, 0, 0) + body


def _sm_body(g: Callable[[str, Any], Any]) -> bytes | None:
    """The mandatory part of a submit_sm / deliver_sm body; None when a field is unusual (wrong
    type, too long, a NUL, an int outside 0..255, a character outside latin-1)."""
    service_type = g("service_type", "")
    source_addr = g("source_addr", "")
    destination_addr = g("destination_addr", "")
    schedule = g("schedule_delivery_time", "")
    validity = g("validity_period", "")
    sm = g("short_message", b"")
    if (
        type(service_type) is not str
        or type(source_addr) is not str
        or type(destination_addr) is not str
        or type(schedule) is not str
        or type(validity) is not str
        or type(sm) is not bytes
        or len(sm) > 254
        or len(service_type) > 5
        or len(source_addr) > 20
        or len(destination_addr) > 20
        or len(schedule) > 16
        or len(validity) > 16
        or "\x00" in service_type + source_addr + destination_addr + schedule + validity
    ):
        return None
    ints = (
        g("source_addr_ton", 0),
        g("source_addr_npi", 0),
        g("dest_addr_ton", 0),
        g("dest_addr_npi", 0),
        g("esm_class", 0),
        g("protocol_id", 0),
        g("priority_flag", 0),
        g("registered_delivery", 0),
        g("replace_if_present_flag", 0),
        g("data_coding", 0),
        g("sm_default_msg_id", 0),
    )
    for value in ints:
        if type(value) is not int:
            return None
    try:
        return _SM_FORMAT % (
            service_type.encode("latin-1"),
            ints[0],
            ints[1],
            source_addr.encode("latin-1"),
            ints[2],
            ints[3],
            destination_addr.encode("latin-1"),
            ints[4],
            ints[5],
            ints[6],
            schedule.encode("latin-1"),
            validity.encode("latin-1"),
            ints[7],
            ints[8],
            ints[9],
            ints[10],
            len(sm),
            sm,
        )
    except _PACK_FAILURES:
        return None


_SUBMIT_SM_ID: Final = COMMAND_IDS["submit_sm"]
