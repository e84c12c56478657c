"""The S3-compatible image store (AWS S3, Cloudflare R2, MinIO): boto3 puts, presigned GET links.

Credentials and region come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_REGION, the shared config files, instance roles). boto3 is imported, and the client made, at
the first picture: importing this module or starting the app opens no connection. Expired
pictures are removed by the bucket's lifecycle rule (README: Image URLs), not by the gateway.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from app.image_store.base import ImageStore, StoredImage, StoreUnavailable, new_image

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
MAX_ATTEMPTS = 3


class S3Store(ImageStore):
    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None, ttl: float,
                 clock: Callable[[], float] = time.time):
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.ttl = ttl
        self.clock = clock
        self._client: Any = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Nothing to check without a network call; a failing bucket shows at the first put."""

    def put(self, owner: str, data: bytes, mime: str) -> StoredImage:
        from botocore.exceptions import BotoCoreError, ClientError

        image = new_image(owner, mime, int(self.clock() + self.ttl))
        try:
            self.client().put_object(Bucket=self.bucket, Key=self.object_key(image), Body=data, ContentType=mime,
                                     CacheControl=f"private, max-age={int(self.ttl)}, immutable")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise StoreUnavailable(f"Storing a picture in bucket {self.bucket} failed: {code}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"Storing a picture in bucket {self.bucket} failed: {type(exc).__name__}") from None
        return image

    def link(self, image: StoredImage, base_url: str) -> str:
        """A presigned GET URL, valid until the picture expires (computed locally: no request)."""
        remaining = max(1, int(image.expires - self.clock()))
        return self.client().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.object_key(image)}, ExpiresIn=remaining)

    def object_key(self, image: StoredImage) -> str:
        return f"{self.prefix}/{image.key}" if self.prefix else image.key

    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = _make_client(self.endpoint_url)
        return self._client


def _make_client(endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    # S3-compatible services behind a custom endpoint (MinIO, R2, a local test server) are addressed
    # by path; AWS itself picks its own style
    config = Config(signature_version="s3v4", connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                    retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                    s3={"addressing_style": "path"} if endpoint_url else None)
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
