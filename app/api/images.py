"""POST /v1/images/generations and /v1/images/edits: OpenAI's Images API over the same providers."""
from flask import Blueprint, Response, current_app, request

from app import answers, delivery, dispatch, schemas, streaming
from app.api.chat import answer_options, json_answer, stream_response, within_budget
from app.core.errors import InvalidRequest, ProviderRejected
from app.images_request import form_fields, json_references, read_form, read_images_request, uploaded_images
from app.jobs import submission
from app.jobs.replay import in_job_run
from app.jsonio import json_response
from app.request_body import read_json_body

_GENERATION = schemas.ImagesGenerationSchema()
_EDIT = schemas.ImagesEditSchema()


def blueprint(prefix: str) -> Blueprint:
    bp = Blueprint(f"images{prefix.replace('/', '_')}", __name__, url_prefix=prefix)

    @bp.post("/images/generations")
    def images_generations():
        """JSON body as OpenAI's; answers ImagesResponse, or image_generation.* events when streaming."""
        data = schemas.load(_GENERATION, read_json_body())
        return _answer(data, "image_generation")

    @bp.post("/images/edits")
    def images_edits():
        """Multipart (`image`, `image[]`, `mask` files) or JSON (`images` / `mask` references)."""
        settings = current_app.extensions["gateway"].settings
        if request.mimetype == "multipart/form-data":
            form, files = read_form(request)
            data = schemas.load(_EDIT, form_fields(form))
            images, mask = uploaded_images(files, settings)
        else:
            data = schemas.load(_EDIT, read_json_body())
            images, mask = json_references(data, settings)
        if not images:
            raise InvalidRequest("An edit needs at least one input image (multipart `image` / `image[]`, "
                                 "or JSON `images`)", param="image")
        return _answer(data, "image_edit", images, mask)

    return bp


def _answer(data: dict, prefix: str, images=(), mask=None) -> Response:
    gateway = current_app.extensions["gateway"]
    options = answer_options(gateway)
    ask = read_images_request(data, gateway.settings, images=images, mask=mask)
    webhook_url = gateway.webhooks.requested_target(request.headers)  # called when a job ends
    links = delivery.for_request(ask.response_format, "response_format", links_if_stored=in_job_run())
    if submission.requested():
        return submission.accept(model=ask.request.model, stream=ask.stream, answer_style=options.style,
                                 webhook_url=webhook_url)
    planned = dispatch.plan(gateway, ask.request)
    if ask.stream:
        with within_budget(ask.download_budget):
            return stream_response(gateway, planned, streaming.ImagesStream(prefix, planned.request.params, options),
                                   links)

    def produce() -> Response:
        result, route = dispatch.run(gateway, planned)
        if not result.images:
            raise ProviderRejected(result.text or f"{route.client.name} blocked this image", code="content_filter",
                                   provider=route.client.name)
        if links:
            links.deliver(result)
        headers = {**dispatch.answer_headers(route, result), **delivery.inline_fallback_headers(links, result)}
        if result.finish_reason != "stop":
            headers["x-gateway-finish-reason"] = result.finish_reason
        return json_response(answers.images_response(result, planned.request.params, options), headers=headers)

    with within_budget(ask.download_budget):
        return json_answer(gateway, produce)
