"""WhatsApp fallback (issue 7): Cloud API client, error policy, worker, webhooks, fake.

* :mod:`~dialer.whatsapp.client` - httpx Cloud API client (template messages, media upload).
* :mod:`~dialer.whatsapp.policy` - pure error-code policy.
* :mod:`~dialer.whatsapp.store` - SQL side (claims, results, webhooks, holds, thread, funnel).
* :mod:`~dialer.whatsapp.worker` - ``marcador whatsapp``.
* :mod:`~dialer.whatsapp.webhooks` - FastAPI router for ``/webhooks/whatsapp``.
* :mod:`~dialer.whatsapp.fake_graph` - local fake of the Graph API (tests, demo).

See docs/whatsapp.md. Nothing here runs at import time.
"""
