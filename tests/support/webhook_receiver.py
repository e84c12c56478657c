"""A webhook endpoint on 127.0.0.1 that checks every request with the standardwebhooks reference verifier."""
from __future__ import annotations

import base64

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.fake_upstream import FakeUpstream, Recorded, Reply

SECRET_BYTES = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()


class Receiver:
    """A webhook endpoint that checks every request with the standardwebhooks verifier."""

    def __init__(self, secret: str = SECRET):
        self.verifier = Webhook(secret)
        self.verified: list[tuple[Recorded, dict]] = []
        self.rejected: list[str] = []
        self.fake = FakeUpstream(default=self._verify).start()

    def _verify(self, request: Recorded) -> Reply:
        try:
            payload = self.verifier.verify(request.body, request.headers)
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
            return Reply(400, json={"error": str(exc)})
        self.verified.append((request, payload))
        return Reply(204, body=b"")

    @property
    def url(self) -> str:
        return self.fake.url + "/hooks"
