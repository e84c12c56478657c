"""What a provider client sent through a `responses` mock, readable like the fake servers' records."""
from __future__ import annotations

from tests.support.fake_upstream import Recorded


def sent(call) -> Recorded:
    """One call recorded by `responses`, with its JSON body or multipart parts at hand."""
    request = call.request
    return Recorded(request.method, request.path_url, "", {k.lower(): v for k, v in request.headers.items()},
                    request.body or b"")
