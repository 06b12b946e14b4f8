"""WhatsApp outbox publication.

Ordering guarantee: the outcome, the retry decision and the WhatsApp outbox row are one SQL
transaction (:meth:`dialer.store.EngineStore.finish_attempt`); the stream publication
(:meth:`Outbox.publish_whatsapp`) happens after that commit. A crash between the two loses
nothing: queued outbox rows are re-published when a dialer starts
(:meth:`Outbox.republish_outbox`) and swept by the WhatsApp worker; the row's idempotency key
makes any repeat harmless.
"""

from __future__ import annotations

from dialer.engine.state import Part
from dialer.logging import get_logger

log = get_logger("marcador.engine")


class Outbox(Part):
    """Publishes committed WhatsApp outbox rows on the WhatsApp stream."""

    async def publish_whatsapp(self, message_id: int, lead_id: int) -> None:
        try:
            await self.streams.add(
                self.keys.whatsapp_stream,
                "lead_exhausted",
                {"message_id": message_id, "lead_id": lead_id},
            )
        except Exception as exc:  # republished from the outbox later
            log.warning("whatsapp_publish_failed", error=type(exc).__name__)

    async def republish_outbox(self) -> int:
        """Re-publish queued WhatsApp fallbacks (after a crash or a Redis loss)."""
        count = 0
        for msg in await self.store.queued_whatsapp():
            if msg.lead_id is not None:
                await self.publish_whatsapp(msg.id, msg.lead_id)
                count += 1
        return count
