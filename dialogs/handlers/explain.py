"""Words for a refusal: a service error or a wrong input, in the subscriber's language."""

from __future__ import annotations

from typing import Any

from backend.errors import InvalidInput, LockedOut, NotFound, RateLimited, ServiceError
from dialogs.errors import DialogInputError
from dialogs.handlers.context import Ctx


def explain(ctx: Ctx, exc: ServiceError | DialogInputError) -> str:
    """The most specific catalogue text for ``exc`` (``invalid.<field>.<reason>``, …, generic)."""
    t = ctx.t
    params: dict[str, Any] = {k: v for k, v in exc.params.items() if isinstance(v, str | int)}
    candidates = [exc.key]
    if isinstance(exc, InvalidInput):
        candidates = [f"invalid.{exc.field}.{exc.reason}", f"invalid.{exc.field}", *candidates]
    elif isinstance(exc, NotFound) and "what" in params:
        candidates.insert(0, f"{exc.key}.{params['what']}")
    if isinstance(params.get("digits"), int):
        params["digits"] = t.count(params["digits"], "digits")
    if isinstance(params.get("number"), str):
        params["number"] = t.number(params["number"])
    if isinstance(exc, LockedOut):
        params["until"] = t.when(exc.until)
    elif isinstance(exc, RateLimited):
        params["minutes"] = max(1, round(exc.retry_after / 60))
    for key in candidates:
        if t.has(key):
            return t(key, **params)
    return t("error.generic")
