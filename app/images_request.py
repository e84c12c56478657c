"""Read OpenAI Images API requests (/v1/images/generations, /v1/images/edits) as neutral ImageRequests."""
from __future__ import annotations

import base64
from dataclasses import dataclass

from werkzeug.datastructures import FileStorage, MultiDict

from app.chat_request import image_ref
from app.errors import InvalidRequest
from app.generation import ImageRef, ImageRequest
from app.media import sniff_mime, to_data_url

# the parameters providers understand, as the Images API spells them
IMAGE_PARAMS = ("background", "input_fidelity", "moderation", "output_compression", "output_format",
                "partial_images", "quality", "size", "style", "watermark")
INT_FIELDS = ("n", "output_compression", "partial_images")
BOOL_FIELDS = ("stream", "watermark")
URL_FORMAT_UNSUPPORTED = ("response_format 'url' is not supported: the gateway stores no images, it answers with "
                          "base64 in data[].b64_json. Omit response_format or send 'b64_json'.")
MAX_UPLOADS = 16


@dataclass(frozen=True)
class ImagesAsk:
    request: ImageRequest
    stream: bool
    requested: dict


def read_images_request(data: dict, *, default_model: str, images: tuple[ImageRef, ...] = (),
                        mask: ImageRef | None = None) -> ImagesAsk:
    """An ImageRequest from a validated Images API body plus the input images already read."""
    if data.get("response_format") == "url":
        raise InvalidRequest(URL_FORMAT_UNSUPPORTED, param="response_format", code="unsupported_value")
    stream = bool(data.get("stream"))
    params = {k: data[k] for k in IMAGE_PARAMS if k in data and data[k] is not None}
    if not stream:
        params.pop("partial_images", None)
    content = [{"type": "text", "text": data["prompt"]}]
    content += [{"type": "image_url", "image_url": {"url": ref.url}} for ref in images]
    request = ImageRequest(
        model=data.get("model") or default_model,
        prompt=data["prompt"],
        n=data.get("n") or 1,
        params=params,
        images=images,
        mask=mask,
        messages=({"role": "user", "content": content},),
        user=data.get("user"),
        param_prefix="",
        prompt_param="prompt",
    )
    return ImagesAsk(request=request, stream=stream, requested=params)


def json_references(data: dict) -> tuple[tuple[ImageRef, ...], ImageRef | None]:
    """Input images and mask of a JSON edit: `images: [{image_url} | {file_id}]`, `mask: {...}`."""
    images = tuple(_reference(ref, f"images[{i}]") for i, ref in enumerate(data.get("images") or []))
    mask = _reference(data["mask"], "mask") if data.get("mask") else None
    return images, mask


def _reference(ref: dict, param: str) -> ImageRef:
    if "file_id" in ref:
        raise InvalidRequest("file_id references are not supported: the gateway keeps no files; "
                             "send image_url (a data URL or an http(s) URL) or upload the file", param=param)
    return image_ref(ref["image_url"], param + ".image_url")


def uploaded_images(files: MultiDict) -> tuple[tuple[ImageRef, ...], ImageRef | None]:
    """Input images from multipart parts `image` / `image[]` (repeatable) and `mask`."""
    parts = [("image", f) for f in files.getlist("image")] + [("image[]", f) for f in files.getlist("image[]")]
    if len(parts) > MAX_UPLOADS:
        raise InvalidRequest(f"At most {MAX_UPLOADS} input images per edit", param="image")
    images = tuple(_upload(storage, name) for name, storage in parts)
    masks = files.getlist("mask")
    mask = _upload(masks[0], "mask") if masks else None
    return images, mask


def _upload(storage: FileStorage, param: str) -> ImageRef:
    data = storage.read()
    if not data:
        raise InvalidRequest("An uploaded image is empty", param=param)
    mime = sniff_mime(data[:16])
    if mime is None:
        raise InvalidRequest("Uploaded files must be PNG, JPEG, WEBP or GIF images", param=param)
    # chat-native providers take images as data URLs, so the upload is kept as one too
    return ImageRef(url=to_data_url(base64.b64encode(data).decode("ascii"), mime), param=param, data=data, mime=mime)


def form_fields(form: MultiDict) -> dict:
    """Multipart text fields as JSON-typed values: integers and booleans parsed, the rest kept as text.

    A value that does not parse is passed on unchanged, so the schema names it in a clear 400.
    """
    data: dict = {}
    for key in form:
        value = form.get(key)
        if key in INT_FIELDS and value.strip().lstrip("-").isdigit():
            data[key] = int(value)
        elif key in BOOL_FIELDS and value.strip().lower() in ("true", "false"):
            data[key] = value.strip().lower() == "true"
        else:
            data[key] = value
    return data
