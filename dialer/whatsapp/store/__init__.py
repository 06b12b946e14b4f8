"""SQL side of the WhatsApp fallback: claims, results, webhooks, holds, thread and funnel.

The ``whatsapp_messages`` row is the truth. Every transition of an outbound row is a
*conditional* UPDATE on its current status (and, while sending, on the claiming worker and
attempt number), so two workers, a webhook and a sweep can race without a message ever being
sent twice or a status moving backwards:

    queued/scheduled --claim--> sending --accepted--> sent -> delivered -> read
                \\                  \\--error--> scheduled (retry / hold) | failed
                 \\--rules--> scheduled (not yet) | skipped (never: no consent, DNC...)

A dead worker's ``sending`` row is first reconciled by the status webhooks (every send carries
``biz_opaque_callback_data = "marcador:<message id>:<attempt>"``, which Meta echoes in each
status), and only requeued once nothing came back within the reconcile grace period.

Layout: :mod:`.facade` (:class:`WhatsAppStore`, the one entry point) over :mod:`.outbox`
(claims, deferrals, the sweep), :mod:`.rules` (contact rules), :mod:`.results` (send results
and the retry policy), :mod:`.holds`, :mod:`.statuses` (status webhooks), :mod:`.inbound`
(replies, opt-out, callbacks) and :mod:`.funnel` (thread and funnel); shared pieces in
:mod:`.common`, opt-out words in :mod:`.optout`.
"""

from dialer.whatsapp.store.common import (
    ACTOR,
    HELD_PREFIX,
    OPAQUE_PREFIX,
    OPEN,
    RANK,
    WEBHOOK_STATUSES,
    Applied,
    InboundResult,
    Prepared,
    SendJob,
    opaque_for,
    parse_opaque,
)
from dialer.whatsapp.store.facade import WhatsAppStore
from dialer.whatsapp.store.funnel import Funnel
from dialer.whatsapp.store.inbound import CALLBACK_PRIORITY_BUMP
from dialer.whatsapp.store.optout import is_opt_out, normalise_text
from dialer.whatsapp.store.outbox import body_params, image_ref
from dialer.whatsapp.store.results import revoke_whatsapp_marketing

__all__ = [
    "ACTOR",
    "CALLBACK_PRIORITY_BUMP",
    "HELD_PREFIX",
    "OPAQUE_PREFIX",
    "OPEN",
    "RANK",
    "WEBHOOK_STATUSES",
    "Applied",
    "Funnel",
    "InboundResult",
    "Prepared",
    "SendJob",
    "WhatsAppStore",
    "body_params",
    "image_ref",
    "is_opt_out",
    "normalise_text",
    "opaque_for",
    "parse_opaque",
    "revoke_whatsapp_marketing",
]
