"""Black Forest Labs FLUX through the real service: a task submitted, polled and downloaded inside one call."""
import base64

import requests

from app.media import image_size
from tests.conftest import BFL_KEY
from tests.integration.conftest import UPSTREAM_TIMEOUT


def chat(gateway, headers, prompt, **tool):
    body = {"model": "flux-2-pro", "messages": [{"role": "user", "content": prompt}],
            "tools": [{"type": "image_generation", "image_generation": tool}]}
    return requests.post(gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_the_sdk_gets_the_picture_of_the_size_it_asked_for(sdk, flux):
    completion = sdk.chat.completions.create(
        model="flux-2-pro", messages=[{"role": "user", "content": "a lighthouse at dusk"}],
        tools=[{"type": "image_generation", "image_generation": {"size": "1536x1024", "output_format": "png"}}])
    call = completion.choices[0].message.tool_calls[0].model_extra["image_generation"]
    assert image_size(base64.b64decode(call["result"])) == (96, 64)  # the fake draws width/16 x height/16
    submit, *polls, download = flux.requests
    assert (submit.method, submit.path, submit.json) == (
        "POST", "/v1/flux-2-pro", {"prompt": "a lighthouse at dusk", "width": 1536, "height": 1024,
                                   "output_format": "png"})
    assert len(polls) >= 2 and all(p.path == "/v1/get_result" and p.headers["x-key"] == BFL_KEY for p in polls)
    assert download.path.startswith("/results/") and "x-key" not in download.headers


def test_a_request_bfl_moderates_is_the_callers_400(gateway, flux, headers):
    response = chat(gateway, headers, "moderate-request please")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "moderation_blocked"
    assert "Derivative Works" in response.json()["error"]["message"]


def test_a_picture_bfl_moderates_is_a_content_filter_choice_or_an_images_api_400(gateway, flux, headers):
    response = chat(gateway, headers, "moderate-content please")
    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter" and "Content Moderated" in choice["message"]["content"]
    images = requests.post(gateway.url + "/v1/images/generations", headers=headers, timeout=30,
                           json={"model": "flux-2-pro", "prompt": "moderate-content please"})
    assert images.status_code == 400 and images.json()["error"]["code"] == "content_filter"


def test_a_task_that_never_finishes_is_a_504_within_the_upstream_timeout(gateway, flux, headers):
    response = chat(gateway, headers, "never-ready")
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "upstream_timeout"
    assert len([r for r in flux.requests if r.method == "POST"]) == 1, "a submitted task is never submitted again"
    assert response.elapsed.total_seconds() < UPSTREAM_TIMEOUT + 2
