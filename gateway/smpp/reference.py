"""The reference path: smpplib packs and unpacks, our tables guard it.

smpplib is correct for the fields it knows but has traps, each handled here rather than by
patching it: PDU objects want a client (a tiny dummy is passed, and ``.sequence`` is set after
construction since a ``sequence=`` keyword is ignored); values come back as bytes; over-long
strings are truncated silently; a short or NUL-less body parses into garbage or raises
``struct.error``; unknown TLVs raise; ``deliver_sm`` has no ``ussd_service_op`` (smpplib #104),
``alert_on_message_delivery`` is dropped, and some TLVs have the wrong type in some classes.

So every body is validated by :mod:`gateway.smpp.schema` first, and a TLV is handed to smpplib
only when smpplib's class knows it with the type SMPP gives it ("delegated"); every other TLV is
packed and unpacked here, and unknown ones are kept verbatim.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Final

from smpplib import consts as sm_consts
from smpplib import exceptions as sm_exceptions
from smpplib import ptypes as sm_ptypes
from smpplib import smpp as sm_smpp

from gateway.smpp.errors import LocalProtocolError, RemoteProtocolError
from gateway.smpp.pdu import COMMAND_IDS, HEADER, Pdu, Status
from gateway.smpp.schema import (
    LAYOUTS,
    TLVS,
    check_cstring,
    check_int,
    check_octets,
    decode_tlv,
    encode_extra,
    encode_tlv,
    scan_body,
    split_tlvs,
)


class _DummyClient:
    """What smpplib's PDU constructor reads a sequence number from; we always set our own."""

    sequence = 0

    def next_sequence(self) -> int:
        return 0


_CLIENT: Final = _DummyClient()


def _smpplib_commands() -> frozenset[str]:
    names = set()
    for name in COMMAND_IDS:
        try:
            sm_smpp.make_pdu(name, client=_CLIENT)
        except sm_exceptions.UnknownCommandError:
            continue
        names.add(name)
    return frozenset(names)


#: Commands smpplib can pack and parse (outbind, cancel_sm, replace_sm, submit_multi it cannot).
SUPPORTED: Final[frozenset[str]] = _smpplib_commands()


def _delegated(name: str) -> tuple[str, ...]:
    """TLVs of ``name`` that smpplib handles correctly, in smpplib's wire order."""
    cls = type(sm_smpp.make_pdu(name, client=_CLIENT))
    mandatory = {f.name for f in LAYOUTS[name]}
    out = []
    for field in cls.params_order:
        t = TLVS.get(field)
        if t is None or field not in sm_consts.OPTIONAL_PARAMS or field in mandatory:
            continue
        param = cls.params[field]
        if (
            (t.kind == "int" and param.type is int and getattr(param, "size", 0) == t.size)
            or (t.kind == "cstr" and param.type is str and not hasattr(param, "size"))
            or (t.kind == "ostr" and param.type is sm_ptypes.ostr)
        ):
            out.append(field)
    return tuple(out)


#: Per command, the TLV names smpplib packs, in the order it packs them.
DELEGATED: Final[Mapping[str, tuple[str, ...]]] = {n: _delegated(n) for n in SUPPORTED}

_SMPPLIB_ERRORS = (
    struct.error,
    ValueError,
    TypeError,
    IndexError,
    UnicodeError,
    sm_exceptions.UnknownCommandError,
    sm_exceptions.PDUError,
)


def _mandatory_value(command: str, kind: str, name: str, max_len: int, value: Any) -> Any:
    if kind == "c":
        return check_cstring(
            command, name, "" if value is None else value, max_len, ascii_only=False
        )
    if kind == "i":
        return check_int(command, name, 0 if value is None else value)
    return check_octets(command, name, b"" if value is None else value, 0, max_len)


def encode(pdu: Pdu) -> bytes:
    """Pack ``pdu`` with smpplib; raise LocalProtocolError for anything it would mangle."""
    cmd = pdu.command
    layout = LAYOUTS[cmd]
    delegated = DELEGATED[cmd]
    obj = sm_smpp.make_pdu(cmd, client=_CLIENT)
    obj.status = pdu.status
    obj.sequence = pdu.sequence
    params = pdu.params
    names = set()
    for f in layout:
        names.add(f.name)
        value = params.get(f.name)
        if value is None and f.name == "interface_version":
            value = 0x34
        setattr(obj, f.name, _mandatory_value(cmd, f.kind, f.name, f.max, value))
    ours: list[bytes] = []
    for name, value in params.items():
        if name in names or value is None:
            continue
        t = TLVS.get(name)
        if t is None:
            raise LocalProtocolError(
                f"{cmd}: unknown parameter {name!r}", status=Status.ESME_RSYSERR
            )
        if name in delegated:
            packed = encode_tlv(cmd, t, value)  # validates exactly as our own path does
            if packed:
                setattr(obj, name, value)
        else:
            ours.append(encode_tlv(cmd, t, value))
    try:
        raw = obj.generate()
    except _SMPPLIB_ERRORS as exc:
        raise LocalProtocolError(
            f"{cmd}: smpplib cannot pack it: {exc}", status=Status.ESME_RSYSERR
        ) from exc
    tail = b"".join(ours) + encode_extra(cmd, pdu.extra_tlvs)
    if not tail:
        return bytes(raw)
    out = bytearray(raw)
    out += tail
    struct.pack_into(">L", out, 0, len(out))
    return bytes(out)


def decode(frame: bytes) -> Pdu:
    """Unpack a whole, length-checked frame of a command smpplib knows."""
    _length, command_id, status, sequence = HEADER.unpack_from(frame)
    cmd = sm_command_name(command_id)
    body = frame[16:]
    layout = LAYOUTS[cmd]
    mandatory, pos = scan_body(cmd, body, layout)
    delegated = DELEGATED[cmd]
    handed = bytearray(frame[: 16 + pos])
    params: dict[str, Any] = {}
    extra: list[tuple[int, bytes]] = []
    for tag, value in split_tlvs(cmd, body, pos):
        t = _BY_TAG.get(tag)
        if t is None:
            extra.append((tag, value))
            continue
        decoded = decode_tlv(cmd, t, value)  # validates length and NUL before smpplib sees it
        if t.name in delegated:
            handed += struct.pack(">HH", tag, len(value)) + value
        else:
            params[t.name] = decoded
    struct.pack_into(">L", handed, 0, len(handed))
    try:
        obj = sm_smpp.parse_pdu(bytes(handed), client=_CLIENT, allow_unknown_opt_params=False)
    except _SMPPLIB_ERRORS as exc:
        raise RemoteProtocolError(
            f"{cmd}: smpplib cannot parse it: {exc}", status=Status.ESME_RSYSERR
        ) from exc
    for f in layout:
        got = getattr(obj, f.name, None)
        if got is None:
            params[f.name] = mandatory[f.name]  # an empty response body: the defaults
        elif f.kind == "c":
            params[f.name] = bytes(got).decode("latin-1")
        else:
            params[f.name] = got
    for name in delegated:
        got = getattr(obj, name, None)
        if got is not None:
            params[name] = bytes(got).decode("latin-1") if TLVS[name].kind == "cstr" else got
    return Pdu(cmd, sequence, status, params, tuple(extra))


_BY_TAG: Final = {t.tag: t for t in TLVS.values()}
_NAMES: Final = {cid: name for name, cid in COMMAND_IDS.items()}


def sm_command_name(command_id: int) -> str:
    return _NAMES[command_id]
