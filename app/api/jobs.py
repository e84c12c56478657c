"""GET and DELETE /v1/images/jobs/{id} (and /api/v1/...): a client's own jobs, and nobody else's."""
from flask import Blueprint, Response, current_app, g

from app.db import DatabaseUnavailable
from app.jobs.records import JobsUnavailable
from app.jobs.store import not_found

UNAVAILABLE = "The job database is unavailable; try again shortly"


def _job_response(job) -> Response:
    return Response(job.to_json(), status=200, mimetype="application/json")


def blueprint(prefix: str) -> Blueprint:
    bp = Blueprint(f"jobs{prefix.replace('/', '_')}", __name__, url_prefix=prefix)

    @bp.get("/images/jobs/<job_id>")
    def get_job(job_id: str):
        """The job object; another key's job answers exactly as an unknown one (404)."""
        jobs = current_app.extensions["gateway"].jobs
        try:
            job = jobs.store.get_current(job_id, str(g.client_key.id))
        except DatabaseUnavailable:
            raise JobsUnavailable(UNAVAILABLE) from None
        if job is None:
            raise not_found(job_id)
        return _job_response(job)

    @bp.delete("/images/jobs/<job_id>")
    def cancel_job(job_id: str):
        """Cancel a job that has not started (409 once it has); answers the cancelled job."""
        jobs = current_app.extensions["gateway"].jobs
        try:
            job = jobs.store.cancel(job_id, str(g.client_key.id))
        except DatabaseUnavailable:
            raise JobsUnavailable(UNAVAILABLE) from None
        return _job_response(job)

    return bp
