"""Run a job: make the synchronous call it stands for, through the app itself, and keep what it answered.

The stored request goes through the same hooks and views as a client's request would (validation,
routing, limits, generation, links, the answer renderers, the request log), so a job's result is
by construction the body the synchronous call would have answered, made under the key's limits and
written to the usage ledger as one row. What differs is marked on the request (`flask.g`): the
client key is the job's (no secret is kept), its requests per minute were counted at the submit,
links are used whenever a store is configured, and the answer is never a whitespace keep-alive.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, g
from werkzeug.test import EnvironBuilder

from app.auth import RUN_AS
from app.jobs.records import StoredRequest

RUN_MARK = "job_run"  # flask.g attribute holding the id of the job a request runs


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def in_job_run() -> bool:
    """True while a view serves a job's run rather than a client."""
    return bool(g.get(RUN_MARK))


def run_request(app: Flask, client_key, job_id: str, request: StoredRequest) -> Answer:
    """The app's whole answer to `request` made by `client_key` (errors included, as JSON error bodies)."""
    environ = EnvironBuilder(path=request.path, method="POST", base_url=request.base_url + "/",
                             headers=request.headers, data=request.body).get_environ()
    with app.request_context(environ):
        setattr(g, RUN_AS, client_key)
        setattr(g, RUN_MARK, job_id)
        response = app.full_dispatch_request()
        try:
            body = response.get_data()
        finally:
            response.close()  # ends the answer: its log line (and anything else waiting for its end)
        return Answer(response.status_code, dict(response.headers), body)
