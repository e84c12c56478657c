"""The Black Forest Labs client: the task it submits, how it polls under the deadline, and every way it ends."""
import time

import pytest
import requests
from responses import matchers

from app.config import Settings
from app.core import context
from app.core.errors import InvalidRequest, ModelNotFound, ProviderRejected, RateLimited, UpstreamError, UpstreamTimeout
from app.core.request import ImageRef, ImageRequest
from app.core.settings import ConfigError, ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.generation import generate
from app.providers import bfl
from app.providers.bfl import BflClient
from app.routing import Router
from tests.conftest import BFL_KEY
from tests.support.images import JPEG_BYTES, PNG_B64, PNG_BYTES
from tests.support.upstream_mock import sent

KEY = BFL_KEY
BASE = "https://api.bfl.test"
SUBMIT = BASE + "/v1/flux-2-pro"
POLL = "https://api.us1.bfl.test/v1/get_result?id=task-1"
SAMPLE = "http://localhost/sample.png?sig=abc"  # the download guard resolves it
TOOL = "tools[0].image_generation."


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(bfl, "POLL_FIRST", 0.001)
    monkeypatch.setattr(bfl, "POLL_MAX", 0.002)


def make_client(allow_private=True, **options) -> BflClient:
    settings = ProviderSettings(name="bfl", api_key=KEY, base_url=BASE, timeout=30, options=options)
    return BflClient(settings, Downloader(DownloadPolicy(1 << 20, 5, 2, allow_private)), connect_timeout=2)


def request(prompt="a fox lantern", **kwargs) -> ImageRequest:
    return ImageRequest("flux-2-pro", prompt, param_prefix=TOOL, prompt_param="messages[0].content", **kwargs)


def task_flow(mocked, *, statuses=("Pending", "Ready"), sample=SAMPLE, picture=PNG_BYTES, poll=POLL):
    """Submit answers a task; polls answer `statuses` in turn; the sample URL serves `picture`."""
    mocked.post(SUBMIT, json={"id": "task-1", "polling_url": poll})
    for status in statuses:
        answer = {"id": "task-1", "status": status}
        if status == "Ready":
            answer["result"] = {"sample": sample, "seed": 7}
        mocked.get(poll, json=answer, match=[matchers.header_matcher({"x-key": KEY})])
    if "Ready" in statuses:
        mocked.get(sample, body=picture, content_type="image/png")


def submitted(mocked) -> dict:
    return sent(mocked.calls[0]).json


def test_a_task_is_submitted_polled_until_ready_and_its_picture_downloaded_at_once(mocked):
    task_flow(mocked, statuses=("Pending", "Pending", "Ready"))
    result = make_client().generate(request(params={"size": "1536x1024"}))
    assert submitted(mocked) == {"prompt": "a fox lantern", "width": 1536, "height": 1024}
    assert sent(mocked.calls[0]).headers["x-key"] == KEY and "authorization" not in sent(mocked.calls[0]).headers
    assert [call.request.method for call in mocked.calls] == ["POST", "GET", "GET", "GET", "GET"]
    assert mocked.calls[-1].request.url == SAMPLE and "x-key" not in mocked.calls[-1].request.headers
    assert [(image.b64, image.mime) for image in result.images] == [(PNG_B64, "image/png")]
    assert result.finish_reason == "stop" and result.dropped == []


@pytest.mark.parametrize("params, dimensions", [
    ({}, None), ({"size": "auto"}, None), ({"size": "1K"}, (1024, 1024)), ({"size": "2K"}, (2048, 2048)),
    ({"size": "4K"}, (2048, 2048)), ({"size": "1000x1000"}, (992, 992)), ({"size": "1920x1080"}, (1920, 1072)),
    ({"size": "64x70"}, (64, 64)),
    ({"quality": "low"}, (1024, 1024)), ({"quality": "medium"}, (2048, 2048)), ({"quality": "hd"}, (2048, 2048)),
    ({"quality": "auto"}, None),
])
def test_size_and_quality_become_width_and_height(mocked, params, dimensions):
    task_flow(mocked, statuses=("Ready",))
    result = make_client().generate(request(params=params))
    body = submitted(mocked)
    assert ((body["width"], body["height"]) if "width" in body else None) == dimensions
    assert result.dropped == []


def test_quality_next_to_a_size_is_dropped(mocked):
    task_flow(mocked, statuses=("Ready",))
    result = make_client().generate(request(params={"size": "1024x1024", "quality": "high"}))
    assert (submitted(mocked)["width"], result.dropped) == (1024, ["quality"])


@pytest.mark.parametrize("size, listed", [("4096x4096", "at most 2048x2048 pixels"), ("32x32", "sides from 64")])
def test_sizes_flux_cannot_make_are_400_before_any_call(mocked, size, listed):
    with pytest.raises(InvalidRequest, match=listed) as caught:
        make_client().generate(request(params={"size": size}))
    assert caught.value.param == TOOL + "size" and caught.value.code == "unsupported_size"
    assert len(mocked.calls) == 0


def test_output_format_png_and_jpeg_are_sent_others_dropped_with_what_flux_lacks(mocked):
    task_flow(mocked, statuses=("Ready",))
    params = {"output_format": "png", "background": "opaque", "moderation": "low", "watermark": True,
              "partial_images": 2}
    result = make_client().generate(request(params=params))
    assert submitted(mocked)["output_format"] == "png"
    assert result.dropped == ["background", "moderation", "watermark"]  # partial_images: ignored outside streams
    task_flow(mocked, statuses=("Ready",))
    assert make_client().generate(request(params={"output_format": "webp"})).dropped == ["output_format"]


def test_input_images_go_as_input_image_fields_base64_or_url(mocked):
    task_flow(mocked, statuses=("Ready",))
    images = (ImageRef("data:...", "messages[0].content[1].image_url.url", PNG_BYTES, "image/png"),
              ImageRef("https://cdn.example.test/b.jpg", "messages[0].content[2].image_url.url"))
    make_client().generate(request(images=images))
    body = submitted(mocked)
    assert body["input_image"] == PNG_B64 and body["input_image_2"] == "https://cdn.example.test/b.jpg"
    assert len(mocked.calls) == 3, "an input URL is BFL's to fetch, not the gateway's"


def test_more_than_eight_input_images_or_a_mask_are_400_before_any_call(mocked):
    refs = tuple(ImageRef("data:", f"messages[0].content[{i}].image_url.url", JPEG_BYTES, "image/jpeg")
                 for i in range(9))
    with pytest.raises(InvalidRequest, match="at most 8") as caught:
        make_client().generate(request(images=refs))
    assert caught.value.param == refs[8].param
    mask = ImageRef("data:", TOOL + "input_image_mask.image_url", PNG_BYTES, "image/png")
    with pytest.raises(InvalidRequest, match="mask") as caught:
        make_client().generate(request(images=refs[:1], mask=mask))
    assert caught.value.param == TOOL + "input_image_mask.image_url" and len(mocked.calls) == 0


def test_request_moderated_is_the_callers_400_with_the_reasons(mocked):
    mocked.post(SUBMIT, json={"id": "task-1", "polling_url": POLL})
    mocked.get(POLL, json={"id": "task-1", "status": "Request Moderated",
                           "details": {"Moderation Reasons": ["Derivative Works"]}})
    with pytest.raises(ProviderRejected, match="Derivative Works") as caught:
        make_client().generate(request())
    assert (caught.value.status, caught.value.code, caught.value.retriable) == (400, "moderation_blocked", False)


def test_content_moderated_is_a_content_filter_result_without_a_picture(mocked):
    mocked.post(SUBMIT, json={"id": "task-1", "polling_url": POLL})
    mocked.get(POLL, json={"id": "task-1", "status": "Content Moderated", "details": {"reason": "NSFW"}})
    result = make_client().generate(request())
    assert result.images == [] and result.finish_reason == "content_filter"
    assert "Content Moderated" in result.text and "NSFW" in result.text


@pytest.mark.parametrize("status", ["Error", "Task not found"])
def test_a_failed_task_is_a_502_never_retried(mocked, status):
    mocked.post(SUBMIT, json={"id": "task-1", "polling_url": POLL})
    mocked.get(POLL, json={"id": "task-1", "status": status})
    with pytest.raises(UpstreamError, match=status) as caught:
        make_client().generate(request())
    assert caught.value.status == 502 and not caught.value.retriable


def test_a_ready_task_without_a_sample_is_502_no_image_generated(mocked):
    mocked.post(SUBMIT, json={"id": "task-1", "polling_url": POLL})
    mocked.get(POLL, json={"id": "task-1", "status": "Ready", "result": {}})
    with pytest.raises(UpstreamError) as caught:
        make_client().generate(request())
    assert caught.value.code == "no_image_generated"


def test_polling_stops_at_the_requests_deadline_with_a_504_that_is_not_retried(mocked):
    mocked.post(SUBMIT, json={"id": "task-1", "polling_url": POLL})
    mocked.get(POLL, json={"id": "task-1", "status": "Pending"})
    context.begin()
    context.set_deadline(0.3)
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout, match="deadline") as caught:
            make_client().generate(request())
    finally:
        context.begin()  # the next test in this thread starts without a deadline
    assert 0.2 < time.monotonic() - started < 5, "it waited for the deadline (0.3 s), not the provider timeout (30 s)"
    assert caught.value.status == 504 and not caught.value.retriable and caught.value.read_timeout


def test_polls_slow_down_up_to_their_ceiling(mocked, monkeypatch):
    monkeypatch.setattr(bfl, "POLL_FIRST", 0.01)
    monkeypatch.setattr(bfl, "POLL_MAX", 0.04)
    pauses = []
    monkeypatch.setattr(bfl.time, "sleep", pauses.append)
    task_flow(mocked, statuses=("Pending",) * 5 + ("Ready",))
    make_client().generate(request())
    assert pauses == pytest.approx([0.01, 0.015, 0.0225, 0.03375, 0.04, 0.04])


def test_a_transient_poll_failure_is_polled_again(mocked):
    mocked.post(SUBMIT, json={"id": "task-1", "polling_url": POLL})
    mocked.get(POLL, status=503, json={"detail": "busy"})
    mocked.get(POLL, body=requests.ConnectionError("reset"))
    mocked.get(POLL, json={"id": "task-1", "status": "Ready", "result": {"sample": SAMPLE}})
    mocked.get(SAMPLE, body=PNG_BYTES, content_type="image/png")
    assert len(make_client().generate(request()).images) == 1


def test_a_poll_the_upstream_refuses_for_good_is_a_502_not_retried(mocked):
    mocked.post(SUBMIT, json={"id": "task-1", "polling_url": POLL})
    mocked.get(POLL, status=404, json={"detail": "Not Found"})
    with pytest.raises(UpstreamError, match="could not report") as caught:
        make_client().generate(request())
    assert caught.value.status == 502 and not caught.value.retriable


@pytest.mark.parametrize("poll", ["https://evil.example.test/v1/get_result?id=task-1",
                                  "http://api.bfl.test/v1/get_result?id=task-1",
                                  "https://bfl.test.evil.test/v1/get_result?id=task-1"])
def test_the_key_is_never_sent_to_a_polling_url_off_bfls_site(mocked, poll):
    mocked.post(SUBMIT, json={"id": "task-1", "polling_url": poll})
    with pytest.raises(UpstreamError, match="outside its own site"):
        make_client().generate(request())
    assert len(mocked.calls) == 1


def test_without_a_polling_url_the_task_id_is_read_from_get_result(mocked):
    mocked.post(SUBMIT, json={"id": "task-9"})
    mocked.get(BASE + "/v1/get_result?id=task-9", json={"status": "Ready", "result": {"sample": SAMPLE}})
    mocked.get(SAMPLE, body=PNG_BYTES, content_type="image/png")
    assert len(make_client().generate(request()).images) == 1


def test_a_sample_url_the_download_guard_refuses_is_502(mocked):
    task_flow(mocked, statuses=("Ready",), sample="http://127.0.0.1/sample.png")
    mocked.remove("GET", "http://127.0.0.1/sample.png")
    with pytest.raises(UpstreamError, match="could not fetch") as caught:
        make_client(allow_private=False).generate(request())
    assert caught.value.status == 502


def test_n_is_fanned_out_into_one_task_per_picture(mocked):
    for index in (1, 2):
        poll = f"https://api.bfl.test/v1/get_result?id=task-{index}"
        mocked.post(SUBMIT, json={"id": f"task-{index}", "polling_url": poll})
        mocked.get(poll, json={"status": "Ready", "result": {"sample": SAMPLE}})
    mocked.get(SAMPLE, body=PNG_BYTES, content_type="image/png")
    result = generate(make_client(), request(n=2))
    assert len(result.images) == 2 and [c.request.method for c in mocked.calls].count("POST") == 2


@pytest.mark.parametrize("status, body, error, expected", [
    (402, {"detail": "Insufficient credits"}, UpstreamError, "out of credits"),
    (429, {"detail": "You have exceeded the number of active tasks"}, RateLimited, "active tasks"),
    (403, {"detail": "Not authenticated"}, UpstreamError, "BFL_API_KEY"),
    (500, {"detail": "boom"}, UpstreamError, "HTTP 500"),
])
def test_submit_failures_map_like_every_provider(mocked, status, body, error, expected):
    mocked.post(SUBMIT, status=status, json=body)
    with pytest.raises(error, match=expected) as caught:
        make_client().generate(request())
    assert KEY not in caught.value.message
    assert caught.value.retriable == (status == 429)


def test_a_field_error_is_the_callers_400_naming_the_field(mocked):
    mocked.post(SUBMIT, status=422, json={"detail": [{"loc": ["body", "width"], "msg": "must be a multiple of 16",
                                                      "type": "value_error"}]})
    with pytest.raises(ProviderRejected, match="multiple of 16") as caught:
        make_client().generate(request())
    assert caught.value.param == "width"


def test_safety_tolerance_comes_from_bfl_safety_tolerance(mocked):
    task_flow(mocked, statuses=("Ready",))
    make_client(safety_tolerance="5").generate(request())
    assert submitted(mocked)["safety_tolerance"] == 5
    with pytest.raises(ConfigError, match="BFL_SAFETY_TOLERANCE"):
        make_client(safety_tolerance="lenient")


def test_flux_names_route_to_bfl_only_when_its_key_is_set():
    downloader = Downloader(DownloadPolicy(1, 1, 1, False))
    route = Router(Settings.from_env({"BFL_API_KEY": KEY}), downloader).route("flux-2-pro")
    assert route.client.name == "bfl" and route.client.settings.base_url == "https://api.bfl.ai"
    with pytest.raises(ModelNotFound, match="BFL_API_KEY"):
        Router(Settings.from_env({}), downloader).route("flux-2-max")
