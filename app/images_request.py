"""Read OpenAI Images API requests (/v1/images/generations, /v1/images/edits) as neutral ImageRequests."""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from app.chat_request import check_prompt, image_budget, image_ref
from app.core.errors import InvalidRequest, PayloadTooLarge
from app.core.request import IMAGE_PARAMETERS, ImageRef, ImageRequest
from app.input_fetches import Budget
from app.media import sniff_mime, to_data_url

INT_FIELDS = ("n", "output_compression", "partial_images")
BOOL_FIELDS = ("stream", "watermark")
MAX_UPLOADS = 16
MAX_FORM_PARTS = 100              # 16 images, a mask and every Images API field fit with room to spare
MAX_FORM_FIELD_BYTES = 500_000    # one text field of a multipart form (a prompt is at most 128 kB of UTF-8)
_INTEGER = re.compile(r"-?[0-9]{1,9}")  # ASCII digits only: "²" passes str.isdigit() but not int()


@dataclass(frozen=True)
class ImagesAsk:
    request: ImageRequest
    stream: bool
    response_format: str = "b64_json"  # or "url" (DESIGN §8)
    download_budget: Budget | None = None


def read_images_request(data: dict, settings, *, images: tuple[ImageRef, ...] = (),
                        mask: ImageRef | None = None) -> ImagesAsk:
    """An ImageRequest from a validated Images API body plus the input images already read."""
    check_prompt(data["prompt"], settings, "prompt")
    budget = image_budget([(ref.param, _carried(ref)) for ref in images], settings,
                          mask=(mask.param, _carried(mask)) if mask is not None else ("", None))
    stream = bool(data.get("stream"))
    params = {k: data[k] for k in IMAGE_PARAMETERS if k in data and data[k] is not None}
    if not stream:
        params.pop("partial_images", None)
    content = [{"type": "text", "text": data["prompt"]}]
    content += [{"type": "image_url", "image_url": {"url": ref.url}} for ref in images]
    request = ImageRequest(
        model=data.get("model") or settings.default_image_model,
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
    return ImagesAsk(request=request, stream=stream,
                     response_format=data.get("response_format") or "b64_json",
                     download_budget=budget)


def _carried(ref: ImageRef) -> int | str:
    """An image's size when the body carries it, else its URL (counted now, sized when downloaded)."""
    return len(ref.data) if ref.data is not None else ref.url


def json_references(data: dict, settings) -> tuple[tuple[ImageRef, ...], ImageRef | None]:
    """Input images and mask of a JSON edit: `images: [{image_url} | {file_id}]`, `mask: {...}`."""
    images = tuple(_reference(ref, f"images[{i}]", settings) for i, ref in enumerate(data.get("images") or []))
    mask = _reference(data["mask"], "mask", settings) if data.get("mask") else None
    return images, mask


def _reference(ref: dict, param: str, settings) -> ImageRef:
    if "file_id" in ref:
        raise InvalidRequest("file_id references are not supported: the gateway keeps no files; "
                             "send image_url (a data URL or an http(s) URL) or upload the file", param=param)
    return image_ref(ref["image_url"], param + ".image_url", settings.max_image_bytes)


def uploaded_images(files: MultiDict, settings) -> tuple[tuple[ImageRef, ...], ImageRef | None]:
    """Input images from multipart parts `image` / `image[]` (repeatable) and `mask`."""
    parts = [("image", f) for f in files.getlist("image")] + [("image[]", f) for f in files.getlist("image[]")]
    limit = min(MAX_UPLOADS, settings.max_input_images)
    if len(parts) > limit:
        raise InvalidRequest(f"At most {limit} input images per edit (GATEWAY_MAX_INPUT_IMAGES)", param="image",
                             code="too_many_images")
    images = tuple(_upload(storage, name, settings.max_image_bytes) for name, storage in parts)
    masks = files.getlist("mask")
    mask = _upload(masks[0], "mask", settings.max_image_bytes) if masks else None
    return images, mask


def _upload(storage: FileStorage, param: str, max_bytes: int) -> ImageRef:
    data = storage.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"An uploaded image is larger than {max_bytes} bytes (GATEWAY_MAX_IMAGE_BYTES)",
                              param=param, code="image_too_large")
    if not data:
        raise InvalidRequest("An uploaded image is empty", param=param)
    mime = sniff_mime(data[:16])
    if mime is None:
        raise InvalidRequest("Uploaded files must be PNG, JPEG, WEBP or GIF images", param=param)
    # chat-native providers take images as data URLs, so the upload is kept as one too
    return ImageRef(url=to_data_url(base64.b64encode(data).decode("ascii"), mime), param=param, data=data, mime=mime)


def read_form(request) -> tuple[MultiDict, MultiDict]:
    """The text fields and files of a multipart request, with the form's own limits named when hit."""
    request.max_form_parts = MAX_FORM_PARTS
    request.max_form_memory_size = MAX_FORM_FIELD_BYTES
    try:
        return request.form, request.files
    except RequestEntityTooLarge:
        if request.content_length is None or request.content_length > (request.max_content_length or 0):
            raise  # the body itself is over GATEWAY_MAX_BODY_BYTES
        raise PayloadTooLarge(f"The multipart form is over a form limit: at most {MAX_FORM_PARTS} parts, and at most "
                              f"{MAX_FORM_FIELD_BYTES} bytes in a text field (files are limited by "
                              "GATEWAY_MAX_IMAGE_BYTES)", code="form_too_large") from None


def form_fields(form: MultiDict) -> dict:
    """Multipart text fields as JSON-typed values: integers and booleans parsed, the rest kept as text.

    A value that does not parse is passed on unchanged, so the schema names it in a clear 400.
    """
    data: dict = {}
    for key in form:
        value = form.get(key)
        if key in INT_FIELDS and _INTEGER.fullmatch(value.strip()):
            data[key] = int(value)
        elif key in BOOL_FIELDS and value.strip().lower() in ("true", "false"):
            data[key] = value.strip().lower() == "true"
        else:
            data[key] = value
    return data
