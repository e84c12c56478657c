"""Which webhook URLs the gateway will POST to: guarded like image downloads, https only."""
from __future__ import annotations

from app.downloads import DownloadRefused, check_url

MAX_URL_LENGTH = 2048


class TargetRefused(Exception):
    """A webhook URL the gateway will not call; the message says why (never a secret), as much as a
    client may read; `detail`, for the log, also says why a host was refused."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail or message


def check_target(url: str, allow_private: bool) -> str:
    """The URL when it may be called: https (plain http only where private addresses are allowed, for
    on-premises receivers and tests), no credentials, every address of its host public unless allowed."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"The webhook URL is longer than {MAX_URL_LENGTH} characters")
    schemes = ("https", "http") if allow_private else ("https",)
    try:
        check_url(url, allow_private, what="webhook", schemes=schemes)
    except DownloadRefused as exc:
        raise TargetRefused(exc.message, exc.detail) from None
    return url
