"""Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature), made by the reference package."""
from __future__ import annotations

from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook


def signed_headers(secret: bytes, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The three headers a receiver verifies: HMAC-SHA256 over `id.timestamp.body` with the shared secret."""
    signature = Webhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, tz=timezone.utc),
                                     body.decode("utf-8"))
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
