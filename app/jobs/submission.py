"""The web side of jobs: a generation request with `Prefer: respond-async` is validated like any other,
then kept as a job and answered `202 Accepted` instead of being generated while the client waits."""
from __future__ import annotations

from flask import Flask, Response, current_app, g, request

from app import observability
from app.answer_options import STYLE_HEADER
from app.core.errors import InvalidRequest
from app.idempotency import is_generation
from app.jobs.prefer import APPLIED_HEADER, RESPOND_ASYNC, asks_async
from app.jobs.records import QUEUED, PROCESS, Job, StoredRequest, new_job_id
from app.jobs.replay import in_job_run
from app.jsonio import json_response
from app.keys.records import utcnow
from app.usage import meter as metering

JOB_PATH = "/v1/images/jobs/{id}"
_ASKED = "respond_async"
STREAMED = ("A streamed request cannot be a job: drop `stream` to get a job whose result is the JSON answer, "
            "or drop `Prefer: respond-async` to stream")


def init_app(app: Flask) -> None:
    @app.before_request
    def note_async_request() -> None:
        """Remember that the request asks for a job, and keep its body: the job stores it as it came."""
        if request.method != "POST" or not is_generation(request.url_rule):
            return
        if asks_async(request.headers) and not in_job_run():
            setattr(g, _ASKED, True)
            request.get_data(cache=True)  # bounded by GATEWAY_MAX_BODY_BYTES like every body


def requested() -> bool:
    """True when the current request asked for a job (`Prefer: respond-async`, RFC 7240)."""
    return bool(g.get(_ASKED))


def accept(*, model: str, stream: bool, answer_style: str, webhook_url: str | None) -> Response:
    """Keep the validated request as a job and answer 202 with where to poll it.

    The model must route (404) and be allowed for the key (403), and the key's requests per minute
    have room (429), now. Its concurrency, budget and images per day are the run's: a job
    waits queued while its key's generations in flight are at the limit. The usage ledger gets the
    run's row, not this one's.
    """
    if stream:
        raise InvalidRequest(STREAMED, param="stream", code="stream_not_supported_for_jobs")
    gateway = current_app.extensions["gateway"]
    gateway.router.routes(model)
    if not g.client_key.static:
        gateway.quotas.check_model(g.client_key, model)
        gateway.quotas.count_request(g.client_key)
    metering.clear()
    stats = observability.current()
    request_id = stats.request_id if stats is not None else "-"
    headers = {STYLE_HEADER: answer_style, "X-Request-ID": request_id}
    if request.content_type:
        headers["Content-Type"] = request.content_type
    job = gateway.jobs.submit(
        Job(id=new_job_id(), key_id=str(g.client_key.id), status=QUEUED, mode=PROCESS, created_at=utcnow(),
            webhook_url=webhook_url, request_id=request_id),
        StoredRequest(path=request.path, headers=headers, body=request.get_data(cache=True),
                      base_url=request.url_root.rstrip("/")))
    return json_response(job.accepted(), status=202,
                         headers={"Location": JOB_PATH.format(id=job.id), APPLIED_HEADER: RESPOND_ASYNC})
