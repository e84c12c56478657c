"""POST /v1/images/generations and /v1/images/edits: OpenAI's Images API over the same providers."""
from dataclasses import replace

from flask import Blueprint, Response, current_app, request

from app import answers, observability, schemas, streaming
from app.api.chat import dropped_header, read_json_body
from app.errors import InvalidRequest, ProviderRejected
from app.generation import generate, generate_events
from app.images_request import form_fields, json_references, read_images_request, uploaded_images
from app.jsonio import json_response

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
        if request.mimetype == "multipart/form-data":
            data = schemas.load(_EDIT, form_fields(request.form))
            images, mask = uploaded_images(request.files)
        else:
            data = schemas.load(_EDIT, read_json_body())
            images, mask = json_references(data)
        if not images:
            raise InvalidRequest("An edit needs at least one input image (multipart `image` / `image[]`, "
                                 "or JSON `images`)", param="image")
        return _answer(data, "image_edit", images, mask)

    return bp


def _answer(data: dict, prefix: str, images=(), mask=None):
    gateway = current_app.extensions["gateway"]
    settings = gateway.settings
    ask = read_images_request(data, default_model=settings.default_image_model, images=images, mask=mask)
    observability.note(model=ask.request.model, prompt=ask.request.prompt)
    route = gateway.router.route(ask.request.model)
    image_request = replace(ask.request, model=route.upstream_model)
    observability.note(provider=route.client.name, channel=route.client.name)
    headers = {"x-gateway-provider": route.client.name}
    if ask.stream:
        job, first = streaming.start(
            lambda events: generate_events(route.client, image_request, events, fanout_threads=settings.fanout_threads),
            first_wait=settings.stream_keepalive)
        if first is not None and first[0] == "done":
            headers.update(dropped_header(first[1].dropped))
        frames = streaming.ImagesStream(prefix, ask.requested).frames(job, first, settings.stream_keepalive)
        return Response(frames, mimetype="text/event-stream", headers={**streaming.HEADERS, **headers})
    result = generate(route.client, image_request, fanout_threads=settings.fanout_threads)
    observability.note(images=len(result.images))
    if not result.images:
        raise ProviderRejected(result.text or f"{route.client.name} blocked this image", code="content_filter",
                               provider=route.client.name)
    headers.update(dropped_header(result.dropped))
    if result.finish_reason != "stop":
        headers["x-gateway-finish-reason"] = result.finish_reason
    return json_response(answers.images_response(result, ask.requested), headers=headers)
