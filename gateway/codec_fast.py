"""Hand-written struct packing for the hot PDUs: submit_sm, deliver_sm, their responses,
enquire_link and enquire_link_resp.

smpplib builds an object and walks its field tables for every PDU (about 24k PDUs/s); these
functions do the same job with one bytes-format or one scan. They only take the happy path:
anything unusual (a wrong type, an over-long field, a malformed body) is handed to the reference
path (:mod:`gateway.codec_smpplib`), which raises the right error. So the fast path can never
accept what the reference refuses, and the hypothesis differential tests in
``tests/gateway/test_codec_fast.py`` prove the bytes and Pdus are the same as smpplib's.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, Final

from gateway import codec_smpplib
from gateway.codec_schema import TLVS, decode_tlvs, encode_extra, encode_tlv, split_tlvs
from gateway.errors import LocalProtocolError
from gateway.pdu import COMMAND_IDS, Pdu, Status

_HEADER: Final = struct.Struct(">LLLL")
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
_INT: Final = frozenset((int,))


class _Unusual(Exception):
    """Leave the fast path; the reference path decides."""


def _tlvs(cmd: str, pdu: Pdu, keys: set[str] | frozenset[str]) -> bytes:
    """The TLV tail in the reference path's order: smpplib's own order, then ours, then extras."""
    params = pdu.params
    out = []
    delegated = codec_smpplib.DELEGATED[cmd]
    for name in delegated:
        if name in keys:
            value = params[name]
            if value is not None:
                out.append(encode_tlv(cmd, TLVS[name], value))
    for name in params:
        if name in keys and name not in delegated:
            value = params[name]
            if value is not None:
                t = TLVS.get(name)
                if t is None:
                    raise _Unusual
                out.append(encode_tlv(cmd, t, value))
    if pdu.extra_tlvs:
        out.append(encode_extra(cmd, pdu.extra_tlvs))
    return b"".join(out)


def _cstr(value: Any, limit: int) -> bytes:
    data: bytes = value.encode("latin-1")
    if len(data) >= limit or b"\x00" in data:
        raise _Unusual
    return data


def _encode_sm(pdu: Pdu) -> bytes:
    params = pdu.params
    g = params.get
    try:
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
        sm = g("short_message", b"")
        if set(map(type, ints)) != _INT or type(sm) is not bytes or len(sm) > 254:
            raise _Unusual
        body = _SM_FORMAT % (
            _cstr(g("service_type", ""), 6),
            ints[0],
            ints[1],
            _cstr(g("source_addr", ""), 21),
            ints[2],
            ints[3],
            _cstr(g("destination_addr", ""), 21),
            ints[4],
            ints[5],
            ints[6],
            _cstr(g("schedule_delivery_time", ""), 17),
            _cstr(g("validity_period", ""), 17),
            ints[7],
            ints[8],
            ints[9],
            ints[10],
            len(sm),
            sm,
        )
        keys = params.keys() - _SM_NAMES
        if keys or pdu.extra_tlvs:
            if sm and params.get("message_payload"):
                raise _Unusual
            body += _tlvs(pdu.command, pdu, keys)
        return (
            _HEADER.pack(16 + len(body), COMMAND_IDS[pdu.command], pdu.status, pdu.sequence) + body
        )
    except (_Unusual, *_PACK_FAILURES):
        return codec_smpplib.encode(pdu)


def _encode_resp(pdu: Pdu) -> bytes:
    params = pdu.params
    try:
        body = _cstr(params.get("message_id", ""), 65) + b"\x00"
        keys = params.keys() - _RESP_NAMES
        if keys or pdu.extra_tlvs:
            body += _tlvs(pdu.command, pdu, keys)
        return (
            _HEADER.pack(16 + len(body), COMMAND_IDS[pdu.command], pdu.status, pdu.sequence) + body
        )
    except (_Unusual, *_PACK_FAILURES):
        return codec_smpplib.encode(pdu)


def _encode_empty(pdu: Pdu) -> bytes:
    if pdu.params or pdu.extra_tlvs:
        return codec_smpplib.encode(pdu)
    try:
        return _HEADER.pack(16, COMMAND_IDS[pdu.command], pdu.status, pdu.sequence)
    except struct.error as exc:
        raise LocalProtocolError(f"{pdu.command}: {exc}", status=Status.ESME_RSYSERR) from exc


def _decode_sm(frame: bytes) -> Pdu:
    n = len(frame)
    find = frame.find
    try:
        p = 16
        e = find(0, p, p + 6)
        if e < 0:
            raise _Unusual
        service_type = frame[p:e].decode("latin-1")
        p = e + 3
        e = find(0, p, p + 21)
        if e < 0:
            raise _Unusual
        source_addr = frame[p:e].decode("latin-1")
        p = e + 3
        e = find(0, p, p + 21)
        if e < 0:
            raise _Unusual
        destination_addr = frame[p:e].decode("latin-1")
        p = e + 4
        e = find(0, p, p + 17)
        if e < 0:
            raise _Unusual
        schedule = frame[p:e].decode("latin-1")
        p = e + 1
        e = find(0, p, p + 17)
        if e < 0:
            raise _Unusual
        validity = frame[p:e].decode("latin-1")
        p = e + 6
        if p > n:
            raise _Unusual
        sm_length = frame[p - 1]
        end = p + sm_length
        if sm_length > 254 or end > n:
            raise _Unusual
        # ton/npi pairs sit just before source_addr and destination_addr; read them by offset
        params: dict[str, Any] = {
            "service_type": service_type,
            "source_addr_ton": frame[16 + len(service_type) + 1],
            "source_addr_npi": frame[16 + len(service_type) + 2],
            "source_addr": source_addr,
        }
        q = 16 + len(service_type) + 3 + len(source_addr) + 1
        params["dest_addr_ton"] = frame[q]
        params["dest_addr_npi"] = frame[q + 1]
        params["destination_addr"] = destination_addr
        q += 2 + len(destination_addr) + 1
        params["esm_class"] = frame[q]
        params["protocol_id"] = frame[q + 1]
        params["priority_flag"] = frame[q + 2]
        params["schedule_delivery_time"] = schedule
        params["validity_period"] = validity
        params["registered_delivery"] = frame[p - 5]
        params["replace_if_present_flag"] = frame[p - 4]
        params["data_coding"] = frame[p - 3]
        params["sm_default_msg_id"] = frame[p - 2]
        params["short_message"] = frame[p:end]
    except (_Unusual, IndexError):
        return codec_smpplib.decode(frame)
    _length, command_id, status, sequence = _HEADER.unpack_from(frame)
    cmd = _NAMES[command_id]
    extra = decode_tlvs(cmd, split_tlvs(cmd, frame, end), params) if end < n else ()
    return Pdu(cmd, sequence, status, params, extra)


def _decode_resp(frame: bytes) -> Pdu:
    _length, command_id, status, sequence = _HEADER.unpack_from(frame)
    cmd = _NAMES[command_id]
    n = len(frame)
    if n == 16:
        return Pdu(cmd, sequence, status, {"message_id": ""})
    e = frame.find(0, 16, 16 + 65)
    if e < 0:
        return codec_smpplib.decode(frame)
    params: dict[str, Any] = {"message_id": frame[16:e].decode("latin-1")}
    extra = decode_tlvs(cmd, split_tlvs(cmd, frame, e + 1), params) if e + 1 < n else ()
    return Pdu(cmd, sequence, status, params, extra)


def _decode_empty(frame: bytes) -> Pdu:
    if len(frame) != 16:
        return codec_smpplib.decode(frame)
    _length, command_id, status, sequence = _HEADER.unpack_from(frame)
    return Pdu(_NAMES[command_id], sequence, status, {})


_NAMES: Final = {COMMAND_IDS[n]: n for n in COMMAND_IDS}

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
