"""Reading request bodies: JSON shape bounded before parsing, unreadable bodies and multipart limits named."""
import io

import pytest
from werkzeug.test import encode_multipart

from app import request_body
from app.core.errors import InvalidRequest
from app.request_body import MAX_JSON_DEPTH, MAX_JSON_VALUES, check_json_shape
from tests.conftest import chat_body
from tests.support.images import PNG_BYTES, PNG_DATA_URL


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("raw", [
    b'{"a": [1, 2, {"b": "c"}]}', nested(MAX_JSON_DEPTH), b'["' + b"[" * 500 + b'"]',  # brackets in strings
    b'{"s": "quote \\" [[[[ and backslash \\\\", "t": [1]}', b'"' + b"x" * 1_000_000 + b'"',
    b"[" + b"1," * (MAX_JSON_VALUES - 2) + b"1]", b'{"unterminated": "[[[[', b"not json at all, [[[",
])
def test_ordinary_and_merely_malformed_bodies_pass_the_shape_check(raw):
    check_json_shape(raw)


@pytest.mark.parametrize("raw, code", [
    (nested(MAX_JSON_DEPTH + 1), "json_too_deep"),
    (b'{"tools": [' + b",".join([b'{"type": "function", "parameters": ' + nested(1000) + b"}"] * 3) + b"]}",
     "json_too_deep"),
    (b"[" + b"1," * MAX_JSON_VALUES + b"1]", "json_too_complex"),
    (b'{"messages": [' + b'{"role":"user","content":"a"},' * 200_000 + b"{}]}", "json_too_complex"),
    (b'["\\"", ' + nested(MAX_JSON_DEPTH + 1) + b"]", "json_too_deep"),  # an escaped quote does not end a string
])
def test_bodies_past_a_structure_limit_are_refused_before_parsing(raw, code):
    with pytest.raises(InvalidRequest) as caught:
        check_json_shape(raw)
    assert caught.value.code == code and caught.value.status == 400
    assert str(MAX_JSON_DEPTH if code == "json_too_deep" else MAX_JSON_VALUES) in caught.value.message


def test_a_million_tiny_messages_are_refused_without_parsing(client, auth, monkeypatch):
    """The issue's shape: 28 MiB of tiny messages. The parser must never see it (it would cost ~500 MB)."""
    monkeypatch.setattr(request_body, "loads", lambda raw: pytest.fail("parsed a body past the structure limits"))
    body = (b'{"model":"local-image","modalities":["image"],"messages":['
            + b'{"role":"user","content":"a"},' * 1_000_000 + b'{"role":"user","content":"a fox"}]}')
    response = client.post("/v1/chat/completions", data=body, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["error"]["code"] == "json_too_complex"


def test_five_thousand_deeply_nested_tools_are_refused(client, auth):
    tool = '{"type":"function","function":{"name":"f","parameters":%s}}' % ("[" * 1000 + "]" * 1000)
    body = ('{"model":"local-image","modalities":["image"],"messages":[{"role":"user","content":"a fox"}],"tools":['
            + ",".join([tool] * 5000) + "]}")
    response = client.post("/v1/chat/completions", data=body, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["error"]["code"] == "json_too_deep"


def test_messages_are_counted_before_the_schema_reads_them(make_app, auth):
    client = make_app(GATEWAY_MAX_MESSAGES="3").test_client()
    body = chat_body(messages=[{"role": "user", "content": ["not a valid content part"]}] * 50)
    response = client.post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == 400 and response.json["error"]["code"] == "too_many_messages"


def test_tools_are_capped_and_ignored_tools_keep_only_their_type(client, auth):
    many = chat_body(tools=[{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)])
    response = client.post("/v1/chat/completions", json=many, headers=auth)
    assert response.status_code == 400 and response.json["error"]["param"] == "tools"
    assert "128" in response.json["error"]["message"]
    from app import schemas
    loaded = schemas.load(schemas.ChatRequestSchema(), chat_body(tools=[
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "big": "x" * 1000}}},
        {"type": "image_generation", "image_generation": {"size": "64x64"}}]))
    assert loaded["tools"] == [{"type": "function"}, {"type": "image_generation", "image_generation": {"size": "64x64"}}]


class _Failing(io.RawIOBase):
    """A WSGI input stream that fails the way gunicorn's body reader does."""

    def __init__(self, error: Exception):
        self.error = error

    def read(self, size=-1):
        raise self.error


class InvalidChunkSize(Exception):
    """Like gunicorn's: a ParseException, not an OSError."""


@pytest.mark.parametrize("error, code", [
    (InvalidChunkSize("Invalid chunk size: b'zz'"), "body_unreadable"),
    (ConnectionResetError(), "client_disconnected"),
    (OSError("No more data"), "client_disconnected"),  # gunicorn's NoMoreData is an IOError
])
def test_a_body_that_cannot_be_read_is_a_400_not_a_500(client, auth, caplog, error, code):
    response = client.post("/v1/chat/completions", headers={**auth, "Content-Type": "application/json"},
                           environ_overrides={"wsgi.input": _Failing(error), "CONTENT_LENGTH": "10"})
    assert response.status_code == 400 and response.json["error"]["code"] == code
    assert not [r for r in caplog.records if r.exc_info]  # no traceback in the log


@pytest.mark.parametrize("field", ["n", "output_compression", "partial_images"])
@pytest.mark.parametrize("value", ["²", "٣", "1" * 5000, "--1", " 1 2 "])
def test_multipart_integers_that_are_not_ascii_integers_are_a_400(client, auth, field, value):
    response = client.post("/v1/images/edits", headers=auth, content_type="multipart/form-data", data={
        "model": "local-image", "prompt": "x", field: value, "image": (io.BytesIO(PNG_BYTES), "a.png")})
    assert response.status_code == 400 and response.json["error"]["param"] == field


def test_multipart_form_limits_are_named_not_the_body_limit(client, auth):
    many_parts = {"model": "local-image", "prompt": "x", "image": (io.BytesIO(PNG_BYTES), "a.png"),
                  **{f"extra{i}": "x" for i in range(150)}}
    response = client.post("/v1/images/edits", headers=auth, content_type="multipart/form-data", data=many_parts)
    assert response.status_code == 413 and response.json["error"]["code"] == "form_too_large"
    assert "100 parts" in response.json["error"]["message"] and "GATEWAY_MAX_BODY_BYTES" not in \
        response.json["error"]["message"]
    # encoded here: the test client would spool a body this size to a file it never closes
    boundary, data = encode_multipart({"model": "local-image", "prompt": "x" * 600_000,
                                       "image": (io.BytesIO(PNG_BYTES), "a.png")})
    big_field = client.post("/v1/images/edits", headers=auth, data=data,
                            content_type=f"multipart/form-data; boundary={boundary}")
    assert big_field.status_code == 413 and "500000 bytes in a text field" in big_field.json["error"]["message"]


@pytest.mark.parametrize("part", [{"type": ["text"], "text": "x"}, {"type": {"t": 1}}, {"type": None}, {"type": 3}])
def test_a_content_part_type_that_is_not_a_string_is_a_400(client, auth, part):
    body = chat_body(messages=[{"role": "user", "content": [{"type": "text", "text": "a fox"}, part]}])
    response = client.post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == 400 and response.json["error"]["param"] == "messages[0].content[1]"


@pytest.mark.parametrize("url", ["http://[::1/a.png", "https://[zz]/a.png", "http://x:99999/a.png"])
def test_malformed_image_urls_are_a_400(client, auth, url):
    body = chat_body(messages=[{"role": "user", "content": [{"type": "text", "text": "a fox"},
                                                            {"type": "image_url", "image_url": {"url": url}}]}])
    response = client.post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == 400 and response.json["error"]["param"] == "messages[0].content[1].image_url.url"


def test_a_data_url_body_still_parses_fast_path(client, auth):
    body = chat_body(messages=[{"role": "user", "content": [{"type": "text", "text": "a fox"},
                                                            {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]}])
    assert client.post("/v1/chat/completions", json=body, headers=auth).status_code == 200


class _Short(io.RawIOBase):
    """What gunicorn gives when the client hangs up before its Content-Length: some bytes, then nothing."""

    def __init__(self, data: bytes):
        self.data = data

    def read(self, size=-1):
        piece, self.data = (self.data, b"") if size is None or size < 0 else (self.data[:size], self.data[size:])
        return piece


def test_a_body_shorter_than_its_content_length_is_a_disconnect_not_parsed(client, auth):
    response = client.post("/v1/chat/completions", headers={**auth, "Content-Type": "application/json"},
                           environ_overrides={"wsgi.input": _Short(b'{"model": "local-image"}'),
                                              "CONTENT_LENGTH": "100000", "wsgi.input_terminated": True})
    assert response.status_code == 400 and response.json["error"]["code"] == "client_disconnected"
