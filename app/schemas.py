"""marshmallow schemas: the request contract at the edge, validated once, plain dicts inward.

Unknown-field policy, chosen on purpose: unknown top-level chat fields and unknown message keys
are accepted and dropped (clients send many: temperature, tool_choice, name...); unknown keys
inside the image_generation tool are rejected, because a misspelt image parameter silently
ignored is a wrong picture the caller pays for.
"""
from __future__ import annotations

import re
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from app.core.conversation import IMAGE_TOOL
from app.core.errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant", "tool")
MODALITIES = ("text", "image")
BACKGROUNDS = ("opaque", "transparent", "auto")
INPUT_FIDELITIES = ("high", "low")
MODERATIONS = ("low", "auto")
OUTPUT_FORMATS = ("png", "webp", "jpeg")
QUALITIES = ("auto", "high", "medium", "low", "hd", "standard")
SIZE_WORDS = ("auto", "1K", "2K", "4K")
SIZE_WXH = re.compile(r"^([1-9][0-9]*)x([1-9][0-9]*)$")
MIN_SIDE, MAX_SIDE = 16, 16384     # pixels; each model then allows its own sizes within these
MAX_TOOLS = 128                    # as OpenAI's API: more is a 400, not memory spent on tools we ignore


class StrictInteger(fields.Integer):
    """An integer that is really an integer: no strings, floats or booleans."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Field):
    """JSON true/false only; "yes" or 1 for a boolean is almost always a client bug."""

    default_error_messages = {"invalid": "Not a valid boolean."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def check_size(value: str) -> None:
    """auto, 1K/2K/4K or WIDTHxHEIGHT with sides in range; the message says which part is wrong."""
    if value in SIZE_WORDS:
        return
    match = SIZE_WXH.match(value)
    if match is None:
        raise ValidationError(f"{value[:40]!r} is not a size: use auto, WIDTHxHEIGHT (e.g. 1024x1024) or 1K/2K/4K.")
    width, height = (int(side) if len(side) <= 6 else MAX_SIDE + 1 for side in match.groups())
    if min(width, height) < MIN_SIDE:
        raise ValidationError(f"{value} is too small: width and height must each be {MIN_SIDE} to {MAX_SIDE} pixels "
                              "(the model's own sizes are listed when it refuses one).")
    if max(width, height) > MAX_SIDE:
        raise ValidationError(f"{value[:40]} is too large: width and height must each be {MIN_SIDE} to {MAX_SIDE} "
                              "pixels (the model's own sizes are listed when it refuses one).")


class MaskSchema(Schema):
    """An image reference (`input_image_mask`, Images API `images[]` / `mask`): a URL or a file id."""

    class Meta:
        unknown = RAISE

    image_url = fields.String()
    file_id = fields.String(validate=validate.Length(min=1))

    @validates_schema
    def exactly_one(self, data, **kwargs):
        if ("image_url" in data) == ("file_id" in data):
            raise ValidationError("Give exactly one of image_url or file_id", "image_url")


class ImageParamsSchema(Schema):
    """Image parameters shared by the image_generation tool and the Images API (DESIGN §2)."""

    class Meta:
        unknown = RAISE

    background = fields.String(validate=validate.OneOf(BACKGROUNDS))
    input_fidelity = fields.String(validate=validate.OneOf(INPUT_FIDELITIES))
    moderation = fields.String(validate=validate.OneOf(MODERATIONS))
    output_compression = StrictInteger(validate=validate.Range(min=0, max=100))
    output_format = fields.String(validate=validate.OneOf(OUTPUT_FORMATS))
    partial_images = StrictInteger(validate=validate.Range(min=0, max=3))
    quality = fields.String(validate=validate.OneOf(QUALITIES))
    size = fields.String(validate=check_size)
    watermark = StrictBoolean()

    @validates_schema
    def formats_fit(self, data, **kwargs):
        fmt = data.get("output_format", "png")
        if data.get("background") == "transparent" and fmt not in ("png", "webp"):
            raise ValidationError("A transparent background needs output_format png or webp", "background")
        if "output_compression" in data and fmt not in ("jpeg", "webp"):
            raise ValidationError("output_compression applies only to output_format jpeg or webp",
                                  "output_compression")


class ImageToolParamsSchema(ImageParamsSchema):
    """Every parameter of the image_generation tool; none has a default here."""

    input_image_mask = fields.Nested(MaskSchema)


class ImagesGenerationSchema(ImageParamsSchema):
    """POST /v1/images/generations (OpenAI's CreateImageRequest, plus `watermark`)."""

    model = fields.String(validate=validate.Length(min=1))
    prompt = fields.String(required=True, validate=validate.Length(min=1))
    n = StrictInteger(validate=validate.Range(min=1, max=10), allow_none=True)
    response_format = fields.String(validate=validate.OneOf(("b64_json", "url")), allow_none=True)
    style = fields.String(validate=validate.OneOf(("vivid", "natural")), allow_none=True)
    user = fields.String(allow_none=True)
    stream = StrictBoolean(allow_none=True)


class ImagesEditSchema(ImagesGenerationSchema):
    """POST /v1/images/edits, JSON form: images and mask as references (uploads arrive as files)."""

    images = fields.List(fields.Nested(MaskSchema), validate=validate.Length(min=1, max=16))
    mask = fields.Nested(MaskSchema)


class ImageUrlSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    url = fields.String(required=True, validate=validate.Length(min=1))
    detail = fields.String()


class TextPartSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    type = fields.Constant("text")
    text = fields.String(required=True)


class ImagePartSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    type = fields.Constant("image_url")
    image_url = fields.Nested(ImageUrlSchema, required=True)


_PART_SCHEMAS = {"text": TextPartSchema(), "image_url": ImagePartSchema()}


class MessageContent(fields.Field):
    """A message's content: a string, null, or a list of `text` / `image_url` parts."""

    default_error_messages = {"invalid": "Must be a string or a list of content parts."}

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise self.make_error("invalid")
        parts, errors = [], {}
        for index, part in enumerate(value):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                errors[index] = ["Must be an object with a string type."]
                continue
            schema = _PART_SCHEMAS.get(part["type"])
            if schema is None:
                errors[index] = {"type": [f"Unsupported content part type {part.get('type')!r}; "
                                          "use 'text' or 'image_url'."]}
                continue
            try:
                parts.append(schema.load(part))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return parts


class ImageToolCalls(fields.Field):
    """An assistant turn's `tool_calls`: the pictures of earlier `image_generation` calls, so a client
    that sends our tool-form answer back lets the model see what it drew. Other calls are ignored."""

    default_error_messages = {"invalid": "Must be a list of tool calls."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        pictures, errors = [], {}
        for index, call in enumerate(value):
            if not isinstance(call, dict) or call.get("type") != IMAGE_TOOL:
                continue
            details = call.get(IMAGE_TOOL)
            details = details if isinstance(details, dict) else {}
            # our answers carry the picture as base64 `result`, or as a link `url` (image_response_format)
            field = "result" if details.get("result") is not None else "url"
            value = details.get(field)
            if value is None:
                continue  # a call that made no picture (failed, or only described)
            if not isinstance(value, str) or not value:
                message = "Must be the picture as base64 text." if field == "result" else "Must be the picture's URL."
                errors[index] = {IMAGE_TOOL: {field: [message]}}
                continue
            pictures.append({"index": index, field: value})
        if errors:
            raise ValidationError(errors)
        return pictures


class MessageSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = MessageContent(load_default=None, allow_none=True)
    # assistant turns as our answers carry them: `images` (modalities form), `tool_calls` (tool form)
    images = fields.List(fields.Nested(ImagePartSchema), allow_none=True)
    tool_calls = ImageToolCalls(allow_none=True)

    @pre_load
    def _pictures_only_on_assistant_turns(self, data, **kwargs):
        # other roles' extra fields (e.g. Ollama-style `images` on user turns) stay ignored, as before
        if isinstance(data, dict) and data.get("role") != "assistant":
            data = {k: v for k, v in data.items() if k not in ("images", "tool_calls")}
        return data


class ToolsField(fields.Field):
    """`tools`: image_generation entries are validated in full; of other tools only the type is kept
    (the gateway makes images, it never calls them), and there are at most MAX_TOOLS.

    Both the seeds' nested form `{"type": "image_generation", "image_generation": {...}}` and the
    OpenAI Responses flat form `{"type": "image_generation", "size": ...}` are accepted.
    """

    default_error_messages = {"invalid": "Must be a list of tools."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        if len(value) > MAX_TOOLS:
            raise ValidationError(f"At most {MAX_TOOLS} tools per request.")
        tools, errors = [], {}
        for index, tool in enumerate(value):
            if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
                errors[index] = {"type": ["Each tool needs a string type."]}
                continue
            if tool["type"] != IMAGE_TOOL:
                tools.append({"type": tool["type"]})
                continue
            nested = tool.get(IMAGE_TOOL)
            flat = {k: v for k, v in tool.items() if k not in ("type", IMAGE_TOOL)}
            if nested is not None and flat:
                errors[index] = {next(iter(flat)): ["Unknown field; put image parameters inside image_generation."]}
                continue
            params = nested if nested is not None else flat
            if not isinstance(params, dict):
                errors[index] = {IMAGE_TOOL: ["Must be an object of image parameters."]}
                continue
            try:
                loaded = ImageToolParamsSchema().load(params)
            except ValidationError as exc:
                errors[index] = {IMAGE_TOOL: exc.messages} if nested is not None else exc.messages
                continue
            tools.append({"type": IMAGE_TOOL, IMAGE_TOOL: loaded})
        if errors:
            raise ValidationError(errors)
        image_tools = [i for i, t in enumerate(tools) if t["type"] == IMAGE_TOOL]
        if len(image_tools) > 1:
            raise ValidationError({image_tools[1]: ["Only one image_generation tool per request."]})
        return tools


class StreamOptionsSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    include_usage = StrictBoolean(allow_none=True)


class ChatRequestSchema(Schema):
    """POST /v1/chat/completions, as far as image generation reads it."""

    class Meta:
        unknown = EXCLUDE

    model = fields.String(required=True, validate=validate.Length(min=1))
    messages = fields.List(fields.Nested(MessageSchema), required=True,
                           validate=validate.Length(min=1, error="Must hold at least one message."))
    modalities = fields.List(fields.String(validate=validate.OneOf(MODALITIES)), allow_none=True)
    n = StrictInteger(validate=validate.Range(min=1, max=10), allow_none=True)
    stream = StrictBoolean(allow_none=True)
    user = fields.String(allow_none=True)
    tools = ToolsField(allow_none=True)
    stream_options = fields.Nested(StreamOptionsSchema, allow_none=True)
    image_response_format = fields.String(validate=validate.OneOf(("b64_json", "url")), allow_none=True)


def load(schema: Schema, payload: Any) -> dict:
    """Validate, turning the first marshmallow error into a 400 whose param is a dotted path."""
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object")
    try:
        data = schema.load(payload)
    except ValidationError as exc:
        path, message = first_error(exc.messages)
        raise InvalidRequest(f"{path}: {message}" if path else message, param=path or None) from None
    # optional fields sent as null mean "not given"
    return {key: value for key, value in data.items() if value is not None}


def _error_order(key: Any) -> tuple:
    """Fields before whole-schema errors, list indexes in numeric order."""
    if isinstance(key, int):
        return (0, key, "")
    return (1 if key == "_schema" else 0, -1, str(key))


def first_error(messages: Any, path: str = "") -> tuple[str, str]:
    """Walk marshmallow's nested error dict to its first leaf: ('tools[0].image_generation.size', msg)."""
    if isinstance(messages, dict):
        key = min(messages, key=_error_order)
        inner = messages[key]
        if key == "_schema":
            return first_error(inner, path)
        step = f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
        return first_error(inner, path + step)
    if isinstance(messages, list) and messages:
        if all(isinstance(m, str) for m in messages):
            return path, messages[0]
        return first_error(messages[0], path)
    return path, str(messages)
