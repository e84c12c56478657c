"""POST /v1/chat/completions (and /api/v1/...): image generation through chat completions."""
import contextlib

from flask import Blueprint, Response, current_app, g, request

from app import answers, delivery, dispatch, input_fetches, keepalive, schemas, streaming
from app.answer_options import STYLE_HEADER, AnswerOptions, choose_style
from app.chat_request import check_message_count, read_chat_request
from app.jobs import submission
from app.jobs.replay import in_job_run
from app.jsonio import json_response
from app.request_body import read_json_body

_SCHEMA = schemas.ChatRequestSchema()


def within_budget(budget: "input_fetches.Budget | None"):
    """Run the generation (and the threads it starts) within the request's download budget."""
    return input_fetches.limits(budget) if budget is not None else contextlib.nullcontext()


def answer_options(gateway) -> AnswerOptions:
    """This request's AnswerOptions, built once before generating (a bad header is a 400 before any cost).

    The style: the X-Gateway-Answer-Style header, else the client key's `answer_style`, else
    GATEWAY_ANSWER_STYLE.
    """
    key_default = getattr(g.get("client_key"), "answer_style", None)
    return AnswerOptions(style=choose_style(request.headers.get(STYLE_HEADER), key_default,
                                            gateway.settings.answer_style))


def stream_response(gateway, planned: dispatch.Plan, writer, links: delivery.LinkDelivery | None = None) -> Response:
    """Start a streamed generation and answer `text/event-stream` (a fast failure keeps its status).

    With `links`, each finished picture is stored before its frame is written, and the frame carries its URL.
    """
    settings = gateway.settings

    def work(events):
        return dispatch.run_streaming(gateway, planned, links.storing(events) if links else events)

    job, first = streaming.start(work, first_wait=settings.stream_keepalive)
    headers = {"x-gateway-provider": planned.routes[0].client.name}
    if first is not None and first[0] == "done":
        headers = dispatch.answer_headers(planned.routes[0], first[1])
    return Response(writer.frames(job, first, settings.stream_keepalive), mimetype="text/event-stream",
                    headers={**streaming.HEADERS, **headers})


def json_answer(gateway, produce) -> Response:
    """A JSON answer, with whitespace keep-alive while waiting when GATEWAY_KEEPALIVE_SECONDS is set."""
    interval = gateway.settings.keepalive_seconds
    return keepalive.respond(produce, interval) if interval and not in_job_run() else produce()


def blueprint(prefix: str) -> Blueprint:
    bp = Blueprint(f"chat{prefix.replace('/', '_')}", __name__, url_prefix=prefix)

    @bp.post("/chat/completions")
    def chat_completions():
        """Validate, route the model, generate, answer in chat.completion shape (or stream chunks)."""
        gateway = current_app.extensions["gateway"]
        options = answer_options(gateway)
        payload = read_json_body()
        check_message_count(payload, gateway.settings)
        ask = read_chat_request(schemas.load(_SCHEMA, payload), gateway.settings)
        webhook_url = gateway.webhooks.requested_target(request.headers)  # called when a job ends
        links = delivery.for_request(ask.image_response_format, "image_response_format",
                                     links_if_stored=in_job_run())
        if submission.requested():
            return submission.accept(model=ask.request.model, stream=ask.stream, answer_style=options.style,
                                     webhook_url=webhook_url)
        planned = dispatch.plan(gateway, ask.request)
        if ask.stream:
            writer = streaming.ChatStream(model=ask.request.model, n=ask.request.n, want_content=ask.want_content,
                                          want_tool=ask.want_tool, tool_params=planned.request.params,
                                          include_usage=ask.include_usage, options=options)
            with within_budget(ask.download_budget):
                return stream_response(gateway, planned, writer, links)

        def produce() -> Response:
            result, route = dispatch.run(gateway, planned)
            if links:
                links.deliver(result)
            body = answers.chat_completion(result, model=ask.request.model, want_content=ask.want_content,
                                           want_tool=ask.want_tool, tool_params=planned.request.params,
                                           options=options)
            headers = {**dispatch.answer_headers(route, result), **delivery.inline_fallback_headers(links, result)}
            return json_response(body, headers=headers)

        with within_budget(ask.download_budget):
            return json_answer(gateway, produce)

    return bp
