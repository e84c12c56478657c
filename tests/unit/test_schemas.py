"""The request contract: what the chat schema accepts, and the dotted path it names when it refuses."""
import pytest

from app.core.errors import InvalidRequest
from app.schemas import ChatRequestSchema, load

SCHEMA = ChatRequestSchema()


def body(**overrides):
    base = {"model": "local-image", "messages": [{"role": "user", "content": "a fox"}], "modalities": ["image"]}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def tool(**params):
    return [{"type": "image_generation", "image_generation": params}]


@pytest.mark.parametrize("payload", [
    body(),
    body(modalities=["image", "text"], n=10, stream=False, user="u-1"),
    body(temperature=0.3, tool_choice="auto", stream_options={"include_usage": True}, metadata={"a": "b"}),
    body(messages=[{"role": r, "content": "x"} for r in ("system", "developer", "assistant", "tool", "user")]),
    body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"},
                                                {"type": "image_url", "image_url": {"url": "data:x", "detail": "high"}}]}]),
    body(messages=[{"role": "assistant", "content": None}, {"role": "user", "content": "go", "name": "bob"}]),
    body(tools=tool(background="transparent", output_format="webp", output_compression=80, quality="hd",
                    size="1536x1024", moderation="low", input_fidelity="high", partial_images=3, watermark=False,
                    input_image_mask={"image_url": "data:image/png;base64,AAAA"})),
    body(tools=tool(size="2K"), modalities=...),
    body(tools=[{"type": "image_generation", "size": "auto", "quality": "low"}], modalities=...),
    body(tools=[{"type": "function", "function": {"name": "f"}}, *tool()]),
    body(n=None, stream=None, user=None, modalities=["image"]),
])
def test_valid_requests_load(payload):
    data = load(SCHEMA, payload)
    assert data["model"] == "local-image"
    assert data["messages"]


@pytest.mark.parametrize("payload, param", [
    (body(model=...), "model"),
    (body(model=""), "model"),
    (body(model=7), "model"),
    (body(messages=...), "messages"),
    (body(messages=[]), "messages"),
    (body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
    (body(messages=[{"content": "x"}]), "messages[0].role"),
    (body(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    (body(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]), "messages[0].content[0].type"),
    (body(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages[0].content[0].text"),
    (body(messages=[{"role": "user", "content": ["x"]}]), "messages[0].content[0]"),
    (body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
     "messages[0].content[0].image_url.url"),
    (body(modalities=["image", "audio"]), "modalities[1]"),
    (body(n=0), "n"),
    (body(n=11), "n"),
    (body(n="2"), "n"),
    (body(n=2.0), "n"),
    (body(n=True), "n"),
    (body(stream="yes"), "stream"),
    (body(tools="image_generation"), "tools"),
    (body(tools=[{"image_generation": {}}]), "tools[0].type"),
    (body(tools=tool(size="999")), "tools[0].image_generation.size"),
    (body(tools=tool(size="1024x1024px")), "tools[0].image_generation.size"),
    (body(tools=tool(quality="ultra")), "tools[0].image_generation.quality"),
    (body(tools=tool(background="clear")), "tools[0].image_generation.background"),
    (body(tools=tool(output_format="gif")), "tools[0].image_generation.output_format"),
    (body(tools=tool(moderation="high")), "tools[0].image_generation.moderation"),
    (body(tools=tool(input_fidelity="max")), "tools[0].image_generation.input_fidelity"),
    (body(tools=tool(output_compression=101)), "tools[0].image_generation.output_compression"),
    (body(tools=tool(output_compression="80", output_format="jpeg")), "tools[0].image_generation.output_compression"),
    (body(tools=tool(partial_images=4)), "tools[0].image_generation.partial_images"),
    (body(tools=tool(watermark="false")), "tools[0].image_generation.watermark"),
    (body(tools=tool(colour="red")), "tools[0].image_generation.colour"),
    (body(tools=tool(background="transparent", output_format="jpeg")), "tools[0].image_generation.background"),
    (body(tools=tool(output_compression=50)), "tools[0].image_generation.output_compression"),
    (body(tools=tool(output_compression=50, output_format="png")), "tools[0].image_generation.output_compression"),
    (body(tools=tool(input_image_mask={})), "tools[0].image_generation.input_image_mask.image_url"),
    (body(tools=tool(input_image_mask={"image_url": "data:x", "file_id": "f"})),
     "tools[0].image_generation.input_image_mask.image_url"),
    (body(tools=tool(input_image_mask={"url": "x"})), "tools[0].image_generation.input_image_mask.url"),
    (body(tools=[{"type": "function"}, {"type": "image_generation", "image_generation": {"size": "x"}}]),
     "tools[1].image_generation.size"),
    (body(tools=[{"type": "image_generation", "image_generation": "big"}]), "tools[0].image_generation"),
    (body(tools=[{"type": "image_generation", "image_generation": {}, "size": "auto"}]), "tools[0].size"),
    (body(tools=[{"type": "image_generation", "bogus": 1}]), "tools[0].bogus"),
    (body(tools=[*tool(), *tool()]), "tools[1]"),
])
def test_invalid_requests_name_the_dotted_path(payload, param):
    with pytest.raises(InvalidRequest) as caught:
        load(SCHEMA, payload)
    assert caught.value.param == param
    assert caught.value.status == 400
    assert caught.value.message.startswith(param + ": ")


@pytest.mark.parametrize("size, says", [
    ("7x7", "7x7 is too small: width and height must each be 16 to 16384 pixels"),
    ("15x1024", "15x1024 is too small"),
    ("20000x20000", "20000x20000 is too large: width and height must each be 16 to 16384 pixels"),
    ("1" * 5000 + "x1024", "is too large"),
    ("0512x512", "is not a size: use auto, WIDTHxHEIGHT (e.g. 1024x1024) or 1K/2K/4K"),
    ("large", "'large' is not a size"),
])
def test_a_refused_size_says_what_is_wrong(size, says):
    with pytest.raises(InvalidRequest) as caught:
        load(SCHEMA, body(tools=tool(size=size)))
    assert says in caught.value.message and caught.value.param == "tools[0].image_generation.size"


@pytest.mark.parametrize("payload", [[], "text", 3, None])
def test_body_must_be_an_object(payload):
    with pytest.raises(InvalidRequest, match="JSON object"):
        load(SCHEMA, payload)


def test_unknown_top_level_fields_are_dropped_not_passed_inward():
    data = load(SCHEMA, body(temperature=1, response_format={"type": "text"}))
    assert "temperature" not in data and "response_format" not in data


def test_null_optionals_mean_not_given():
    data = load(SCHEMA, body(n=None, stream=None, user=None))
    assert "n" not in data and "stream" not in data and "user" not in data


def test_flat_responses_style_tool_is_normalised_to_the_nested_form():
    data = load(SCHEMA, body(tools=[{"type": "image_generation", "size": "1024x1024"}]))
    assert data["tools"] == [{"type": "image_generation", "image_generation": {"size": "1024x1024"}}]


def test_list_errors_sort_numerically():
    messages = [{"role": "user", "content": "x"}] * 10 + [{"role": "bad"}, {"role": "bad"}]
    messages[2] = {"role": "bad"}
    with pytest.raises(InvalidRequest) as caught:
        load(SCHEMA, body(messages=messages))
    assert caught.value.param == "messages[2].role"


def test_pictures_of_earlier_assistant_turns_are_read_and_other_roles_extras_ignored():
    payload = body(messages=[
        {"role": "user", "content": "a kite", "images": ["aGVsbG8="], "tool_calls": "whatever"},
        {"role": "assistant", "content": None, "images": [{"type": "image_url", "image_url": {"url": "data:x"}}],
         "tool_calls": [{"type": "function", "function": {"name": "f"}},
                        {"type": "image_generation", "image_generation": {"status": "failed"}},
                        {"type": "image_generation", "image_generation": {"result": "iVBORw0KGgo="}}]},
        {"role": "user", "content": "now purple"}])
    user, assistant, _ = load(SCHEMA, payload)["messages"]
    assert "images" not in user and "tool_calls" not in user
    assert assistant["images"] == [{"type": "image_url", "image_url": {"url": "data:x"}}]
    assert assistant["tool_calls"] == [{"index": 2, "result": "iVBORw0KGgo="}]


@pytest.mark.parametrize("field, value, param", [
    ("tool_calls", {"type": "image_generation"}, "messages.1.tool_calls"),
    ("tool_calls", [{"type": "image_generation", "image_generation": {"result": ""}}],
     "messages.1.tool_calls.0.image_generation.result"),
    ("images", ["aGVsbG8="], "messages.1.images.0"),
])
def test_malformed_assistant_pictures_are_400_naming_the_field(field, value, param):
    payload = body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", field: value},
                             {"role": "user", "content": "c"}])
    with pytest.raises(InvalidRequest) as caught:
        load(SCHEMA, payload)
    assert caught.value.param.replace("[", ".").replace("]", "") == param
