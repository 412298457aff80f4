"""The server-side objects behind the HTTP API: portal passwords and USSD-over-HTTP turns.

They sit on the same layers as SMS and USSD over SMPP: a portal password is issued by the
backend and delivered through the outbox like any reply; an aggregator's USSD turn is a dialog
turn whose screen goes back in the HTTP response instead of a submit_sm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fsm.runtime import Inbound, Reply, TurnUnavailable
from gateway.outbox.base import Outbox
from gateway.sms.text import Policy, ussd_text
from gateway.web.guards import PasswordCap
from gateway.web.turns import TurnRunner, ussd_screen

log = logging.getLogger(__name__)

#: Renders the password SMS: (language, password) → text. Comes from the dialogs catalogue.
PasswordText = Callable[[str, str], str]
#: A catalogue text by (language, key): what an aggregator is told when no turn can answer.
CatalogueText = Callable[[str, str], str]


class Portal:
    def __init__(
        self,
        backend: Any,
        runtime: TurnRunner,
        outbox: Outbox,
        password_text: PasswordText,
        short_code: str,
        *,
        password_cap: PasswordCap | None = None,
        catalogue: CatalogueText | None = None,
        policy: Policy = "ucs2",
        language: str = "pl",
    ) -> None:
        self.backend = backend
        self.runtime = runtime
        self.outbox = outbox
        self.password_text = password_text
        self.short_code = short_code
        self.password_cap = password_cap
        self.catalogue = catalogue
        #: The SMS text policy, applied to aggregator screens as SMPP USSD applies it.
        self.policy = policy
        self.language = language

    async def send_temp_password(self, msisdn: str) -> None:
        info = await self.backend.subscriber(msisdn)  # NotFound for a stranger
        if self.password_cap is not None:
            await self.password_cap.take()  # GlobalRateLimited past the cap for all numbers
        password = await self.backend.issue_temp_password(msisdn)
        text = self.password_text(getattr(info, "language", "pl") or "pl", password)
        await self.outbox.put(msisdn, text, {"channel": "sms", "source": self.short_code})
        log.info("temporary password queued for the portal", extra={"msisdn": msisdn})

    async def verify_temp_password(self, msisdn: str, password: str) -> bool:
        return bool(await self.backend.verify_temp_password(msisdn, password))

    async def ussd_turn(
        self, msisdn: str, session_id: str, text: str, dialled: str | None = None
    ) -> tuple[str, bool]:
        """One aggregator turn; ``dialled`` is the dial string the answers so far amount to
        (replayed when the session is new here, as the network would have dialled it)."""
        inbound = Inbound(
            msisdn=msisdn,
            channel="ussd",
            text=text,
            session_id=f"http:{session_id}",
            dialled=dialled,
        )
        try:
            replies: list[Reply] = await self.runtime.turn(inbound)
        except TurnUnavailable:  # no redelivery over HTTP: the aggregator gets the polite error
            replies = [Reply(await self.ussd_refusal("notice.error", msisdn))]
        screen, end = ussd_screen(replies)
        if not screen:  # never an empty END: the subscriber is told something went wrong
            return await self.ussd_refusal("notice.error", msisdn), True
        return ussd_text(screen, self.policy), end

    async def ussd_refusal(self, key: str, msisdn: str | None = None) -> str:
        """The catalogue text ``key`` in the subscriber's language (the operator's when the
        number is not known), under the text policy."""
        lang = self.language
        if msisdn is not None:
            try:
                lang = getattr(await self.backend.subscriber(msisdn), "language", lang) or lang
            except Exception:  # the database may be what failed: the operator's language will do
                lang = self.language
        text = self.catalogue(lang, key) if self.catalogue is not None else key
        return ussd_text(text, self.policy)
