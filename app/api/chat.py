"""POST /v1/chat/completions (and /api/v1/...): image generation through chat completions."""
from dataclasses import replace

from flask import Blueprint, current_app, request

from app import answers, schemas
from app.chat_request import read_chat_request
from app.errors import InvalidRequest
from app.generation import generate
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


def blueprint(prefix: str) -> Blueprint:
    bp = Blueprint(f"chat{prefix.replace('/', '_')}", __name__, url_prefix=prefix)

    @bp.post("/chat/completions")
    def chat_completions():
        """Validate, route the model, generate, answer in chat.completion shape."""
        gateway = current_app.extensions["gateway"]
        data = schemas.load(_SCHEMA, read_json_body())
        ask = read_chat_request(data)
        route = gateway.router.route(ask.request.model)
        image_request = replace(ask.request, model=route.upstream_model)
        result = generate(route.client, image_request, fanout_threads=gateway.settings.fanout_threads)
        body = answers.chat_completion(result, model=ask.request.model, want_content=ask.want_content,
                                       want_tool=ask.want_tool, tool_params=ask.tool_params)
        headers = {"x-gateway-provider": route.client.name}
        if result.dropped:
            headers["x-gateway-dropped-params"] = ",".join(result.dropped)
        return json_response(body, headers=headers)

    return bp
