"""Letters to customer care (Kontakt z BOK): orders (Zlecenie) and complaints (Reklamacja).

Each kind has a fixed list of types whose codes are short enough to be menu numbers. A filed
letter gets a reference number (``ZL/2026/000123``, ``RK/2026/000124``) and the status
``received``; customer care moves it on.
"""

from __future__ import annotations

from backend.errors import InvalidInput
from backend.models import LetterRow
from backend.records import Letter, LetterType
from backend.services.context import Context, audit, lock_subscriber, reference_number

PREFIXES = {"zlecenie": "ZL", "reklamacja": "RK"}
MAX_DATA = 500
MAX_DESCRIPTION = 1000


def _kind(kind: str) -> str:
    clean = kind.strip().lower()
    if clean not in PREFIXES:
        raise InvalidInput("kind", "unknown", kind=kind)
    return clean


async def letter_types(ctx: Context, kind: str) -> list[LetterType]:
    return list((await ctx.reference()).letter_types.get(_kind(kind), []))


async def file_letter(
    ctx: Context,
    msisdn: str,
    kind: str,
    type_code: str,
    data: str,
    description: str,
    channel: str,
) -> Letter:
    clean_kind = _kind(kind)
    types = {t.code: t for t in await letter_types(ctx, clean_kind)}
    letter_type = types.get(type_code.strip())
    if letter_type is None:
        raise InvalidInput("type_code", "unknown", type_code=type_code)
    data, description = data.strip(), description.strip()
    if len(data) > MAX_DATA:
        raise InvalidInput("data", "too_long", limit=MAX_DATA)
    if not description:
        raise InvalidInput("description", "missing")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput("description", "too_long", limit=MAX_DESCRIPTION)
    async with ctx.sessions.begin() as session:
        await lock_subscriber(session, msisdn)
        row = LetterRow(
            msisdn=msisdn,
            kind=clean_kind,
            type_code=letter_type.code,
            data=data,
            description=description,
            status="received",
            created_at=ctx.now(),
        )
        session.add(row)
        await session.flush()
        row.reference = reference_number(PREFIXES[clean_kind], ctx.today(), row.id)
        audit(session, ctx, msisdn, "letter", channel, kind=clean_kind, reference=row.reference)
        return Letter(
            row.reference,
            clean_kind,
            letter_type.code,
            letter_type.name,
            data,
            description,
            row.status,
            row.created_at,
        )
