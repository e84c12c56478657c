"""Pictures as links through the real service under gunicorn: the directory store served by the gateway,
and S3 presigned links against a local S3-compatible server (moto); the OpenAI SDK reads the links."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest
import requests

from tests.conftest import CLIENT_KEY, chat_body
from tests.integration.conftest import gateway_env
from tests.support.gateway_process import ROOT, GatewayProcess
from tests.support.s3_server import CREDENTIALS, running_s3
from tests.support.sse import data_frames, parse

BUCKET = "gateway-pictures"
OTHER_KEY = "gw-other-client-key-77"
PREFIX = "generated"


def _gateway(request, tmp_path_factory, name, **overrides) -> GatewayProcess:
    servers = [request.getfixturevalue(f) for f in ("openai_server", "ark_server", "openrouter_server", "gemini_server")]
    directory = tmp_path_factory.mktemp(name)
    env = gateway_env(*servers, GATEWAY_DATA_DIR=str(directory / "data"), **overrides)
    return GatewayProcess(env, directory / "gunicorn.log").start()


@pytest.fixture(scope="module")
def directory_gateway(request, tmp_path_factory):
    """Two workers sharing one picture directory; no signing key configured (the directory holds one)."""
    gateway = _gateway(request, tmp_path_factory, "directory-store")
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with running_s3(tmp_path_factory.mktemp("s3")) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture(scope="module")
def s3_gateway(request, tmp_path_factory, s3):
    gateway = _gateway(request, tmp_path_factory, "s3-store", GATEWAY_IMAGE_STORE=f"s3://{BUCKET}/{PREFIX}",
                       GATEWAY_S3_ENDPOINT_URL=s3.url, GATEWAY_IMAGE_URL_TTL="600",
                       GATEWAY_API_KEYS=f"{CLIENT_KEY},{OTHER_KEY}", **CREDENTIALS)
    yield gateway
    gateway.stop()


def sdk_for(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def download(url: str) -> requests.Response:
    """What a client does with a link: a plain GET, no Authorization."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text[:300]
    return response


def test_sdk_images_generate_with_url_downloads_the_picture(directory_gateway, upstream):
    with sdk_for(directory_gateway) as sdk:
        result = sdk.images.generate(model="gpt-image-1", prompt="a red kite", response_format="url", n=2)
    assert [item.b64_json for item in result.data] == [None, None]
    for item in result.data:
        assert item.url.startswith(directory_gateway.url + "/images/")
        picture = download(item.url)
        assert picture.headers["Content-Type"] == "image/png" and picture.content.startswith(b"\x89PNG")
        assert int(picture.headers["Content-Length"]) == len(picture.content)
        assert picture.headers["ETag"] and "max-age=" in picture.headers["Cache-Control"]
    assert "response_format" not in upstream.received("/v1/images/generations")[0].json


def test_every_worker_opens_every_link(directory_gateway):
    """Two gunicorn workers, no GATEWAY_URL_SIGNING_KEY: they share the key kept in the directory."""
    with sdk_for(directory_gateway) as sdk:
        url = sdk.images.generate(model="local-image", prompt="a fox", size="32x32", response_format="url").data[0].url
    for _ in range(8):  # new connections, spread over both workers
        assert download(url).content.startswith(b"\x89PNG")
    signature = urlsplit(url).query.split("signature=")[1]
    tampered = requests.get(url.replace(signature, signature[::-1]), timeout=10)
    assert tampered.status_code == 403 and tampered.json()["error"]["code"] == "invalid_signature"


def test_chat_through_the_sdk_with_links(directory_gateway):
    with sdk_for(directory_gateway) as sdk:
        completion = sdk.chat.completions.create(
            model="local-image", messages=[{"role": "user", "content": "a lighthouse"}], modalities=["image", "text"],
            extra_body={"image_response_format": "url"})
    url = completion.choices[0].message.model_extra["images"][0]["image_url"]["url"]
    assert download(url).content.startswith(b"\x89PNG")


def test_a_stream_with_links(directory_gateway):
    response = requests.post(directory_gateway.url + "/v1/chat/completions", timeout=30,
                             headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                             json=chat_body(stream=True, image_response_format="url",
                                            tool={"size": "32x32", "partial_images": 1}))
    assert response.status_code == 200
    deltas = [f.json["choices"][0]["delta"] for f in data_frames(parse(response.content))[:-1] if f.json["choices"]]
    assert any(d.get("partial_images") for d in deltas)
    final = next(d for d in deltas if "images" in d)
    assert download(final["images"][0]["image_url"]["url"]).content.startswith(b"\x89PNG")
    assert len(response.content) < 64 * 1024  # previews inline, the picture as a link


def test_sdk_images_generate_with_url_from_s3(s3_gateway, s3):
    with sdk_for(s3_gateway) as sdk:
        result = sdk.images.generate(model="gpt-image-1", prompt="a red kite", response_format="url")
    url = result.data[0].url
    assert url.startswith(f"{s3.url}/{BUCKET}/{PREFIX}/") and "X-Amz-Signature=" in url and "X-Amz-Expires=" in url
    picture = download(url)
    assert picture.headers["Content-Type"] == "image/png" and picture.content.startswith(b"\x89PNG")
    assert picture.headers["ETag"] and int(picture.headers["Content-Length"]) == len(picture.content)
    key = urlsplit(url).path.removeprefix(f"/{BUCKET}/")
    stored = s3.client().get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == picture.content
    assert stored["CacheControl"] == "private, max-age=600, immutable"
    assert 590 <= int(re.search(r"X-Amz-Expires=(\d+)", url).group(1)) <= 600


def test_s3_pictures_are_kept_per_client_key(s3_gateway, s3):
    def owner_folder(key: str, prompt: str) -> str:
        with openai.OpenAI(base_url=s3_gateway.url + "/v1", api_key=key, max_retries=0, timeout=30) as sdk:
            url = sdk.images.generate(model="local-image", prompt=prompt, size="16x16", response_format="url").data[0].url
        assert key not in url
        return urlsplit(url).path.split("/")[3]

    mine = owner_folder(CLIENT_KEY, "a")
    assert owner_folder(CLIENT_KEY, "b") == mine
    assert owner_folder(OTHER_KEY, "a") != mine
    folders = {obj["Key"].split("/")[1] for obj in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert mine in folders


def test_the_readme_lifecycle_rule_is_accepted_by_s3(s3):
    rule = readme_lifecycle_rule()
    assert rule["Rules"][0]["Expiration"]["Days"] >= 1
    client = s3.client()
    client.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=rule)
    assert client.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"][0]["Filter"]["Prefix"] == "generated/"


def readme_lifecycle_rule() -> dict:
    """The JSON the README tells operators to give `aws s3api put-bucket-lifecycle-configuration`."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"--lifecycle-configuration '(\{.*?\})'", readme, re.S)
    assert match, "README.md should show the lifecycle rule for S3"
    return json.loads(match.group(1))


def test_a_store_that_fails_sends_the_picture_inline(request, tmp_path_factory, s3):
    gateway = _gateway(request, tmp_path_factory, "s3-missing-bucket", GATEWAY_IMAGE_STORE="s3://no-such-bucket/x",
                       GATEWAY_S3_ENDPOINT_URL=s3.url, WEB_CONCURRENCY="1", **CREDENTIALS)
    try:
        response = requests.post(gateway.url + "/v1/images/generations", timeout=30,
                                 headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                                 json={"model": "local-image", "prompt": "x", "size": "16x16", "response_format": "url"})
        log = gateway.log()
    finally:
        gateway.stop()
    assert response.status_code == 200
    assert response.headers["x-gateway-image-delivery"] == "b64_json" and response.json()["data"][0]["b64_json"]
    assert "NoSuchBucket" in log and CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in log


def test_no_picture_is_left_in_the_repository(directory_gateway):
    # (the PaaS test's service keeps its SQLite database in ./var, as a platform's would: not a picture)
    pictures = Path(ROOT) / "var" / "images"
    assert not pictures.exists() or not any(pictures.iterdir())
