"""POST /v1/chat/completions (and /api/v1/...): image generation through chat completions."""
from dataclasses import replace

from flask import Blueprint, Response, current_app, request

from app import answers, observability, schemas, streaming
from app.chat_request import read_chat_request
from app.errors import InvalidRequest
from app.generation import generate, generate_events
from app.jsonio import json_response, loads

_SCHEMA = schemas.ChatRequestSchema()


def read_json_body() -> object:
    """The body as JSON whatever the Content-Type (curl -d sends form encoding by default)."""
    raw = request.get_data(cache=False)
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object")
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The request body is not valid JSON") from None


def dropped_header(dropped: list[str]) -> dict[str, str]:
    return {"x-gateway-dropped-params": ",".join(dropped)} if dropped else {}


def blueprint(prefix: str) -> Blueprint:
    bp = Blueprint(f"chat{prefix.replace('/', '_')}", __name__, url_prefix=prefix)

    @bp.post("/chat/completions")
    def chat_completions():
        """Validate, route the model, generate, answer in chat.completion shape (or stream chunks)."""
        gateway = current_app.extensions["gateway"]
        settings = gateway.settings
        ask = read_chat_request(schemas.load(_SCHEMA, read_json_body()))
        observability.note(model=ask.request.model, prompt=ask.request.prompt)
        route = gateway.router.route(ask.request.model)
        image_request = replace(ask.request, model=route.upstream_model)
        observability.note(provider=route.client.name, channel=route.client.name)
        headers = {"x-gateway-provider": route.client.name}
        if ask.stream:
            writer = streaming.ChatStream(model=ask.request.model, n=image_request.n, want_content=ask.want_content,
                                          want_tool=ask.want_tool, tool_params=ask.tool_params,
                                          include_usage=ask.include_usage)
            job, first = streaming.start(
                lambda events: generate_events(route.client, image_request, events,
                                               fanout_threads=settings.fanout_threads),
                first_wait=settings.stream_keepalive)
            if first is not None and first[0] == "done":
                headers.update(dropped_header(first[1].dropped))
            return Response(writer.frames(job, first, settings.stream_keepalive), mimetype="text/event-stream",
                            headers={**streaming.HEADERS, **headers})
        result = generate(route.client, image_request, fanout_threads=settings.fanout_threads)
        observability.note(images=len(result.images))
        body = answers.chat_completion(result, model=ask.request.model, want_content=ask.want_content,
                                       want_tool=ask.want_tool, tool_params=ask.tool_params)
        return json_response(body, headers={**headers, **dropped_header(result.dropped)})

    return bp
