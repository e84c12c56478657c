"""LiteLLM as a client library against the gateway: completion() in both forms and styles, streamed or
not; image_generation(); image_edit().

Run by tests/clients/test_litellm.py as `python litellm_client.py BASE_URL KEY` with the pinned
LiteLLM (requirements.txt); prints one JSON object: per case, the pictures LiteLLM handed back, or
the error it raised. The gateway is an OpenAI-compatible endpoint to LiteLLM: `openai/<model>` with
`api_base`. The parts between `README:` and `END README` are the README's snippets, word for word.
"""
import base64
import io
import json
import logging
import sys

import litellm

BASE_URL, KEY = sys.argv[1], sys.argv[2]
PROMPT = [{"role": "user", "content": "a lighthouse at dusk"}]
FORMS = {"modalities": {"modalities": ["image", "text"]},
         "tool": {"tools": [{"type": "image_generation", "image_generation": {"size": "64x64"}}]}}


def readme_completion():
    # README: litellm
    response = litellm.completion(
        model="openai/local-image", api_base=BASE_URL, api_key=KEY,
        extra_headers={"X-Gateway-Answer-Style": "openrouter"},
        messages=[{"role": "user", "content": "a lighthouse at dusk"}], modalities=["image", "text"])
    data_url = response.choices[0].message.images[0]["image_url"]["url"]  # data:image/png;base64,...
    # END README
    report.picture(0, data_url, response.choices[0].message.content)


def completion(style: str, form: str, stream: bool):
    response = litellm.completion(model="openai/local-image", api_base=BASE_URL, api_key=KEY, messages=PROMPT,
                                  extra_headers={"X-Gateway-Answer-Style": style}, stream=stream, **FORMS[form])
    if stream:  # the documented way to get the whole message back from a stream
        response = litellm.stream_chunk_builder(list(response), messages=PROMPT)
    message = response.choices[0].message
    for image in getattr(message, "images", None) or []:
        report.picture(0, image["image_url"]["url"], message.content)
    for call in message.tool_calls or []:
        if call.type == "image_generation":
            report.picture(0, "data:image/png;base64," + call.image_generation["result"], message.content)


def image_generation():
    # README: litellm-images
    response = litellm.image_generation(model="openai/local-image", api_base=BASE_URL, api_key=KEY,
                                        prompt="a lighthouse at dusk", size="64x64", n=2)
    pictures = [base64.b64decode(item.b64_json) for item in response.data]
    # END README
    for index, item in enumerate(response.data):
        report.picture(index, "data:image/png;base64," + item.b64_json)


def image_edit():
    source = litellm.image_generation(model="openai/local-image", api_base=BASE_URL, api_key=KEY,
                                      prompt="a lighthouse", size="64x64").data[0].b64_json
    picture = io.BytesIO(base64.b64decode(source))
    picture.name = "in.png"
    response = litellm.image_edit(model="openai/local-image", api_base=BASE_URL, api_key=KEY,
                                  prompt="make it night", image=picture, size="64x64")
    report.picture(0, "data:image/png;base64," + response.data[0].b64_json)
    report.current["input_tokens_details"] = dict(response.usage.input_tokens_details)


class Report:
    """What one case got: pictures (choice index, data URL) and the message's content."""

    def __init__(self):
        self.cases: dict[str, dict] = {}
        self.current: dict = {}

    def run(self, name: str, case, *args) -> None:
        self.current = {"pictures": []}
        try:
            case(*args)
        except Exception as exc:  # reported, not raised: the test says which cases must pass
            self.current["error"] = f"{type(exc).__name__}: {exc}"[:1500]
        self.cases[name] = self.current

    def picture(self, choice: int, data_url: str, content=None) -> None:
        self.current["pictures"].append({"choice": choice, "data_url": data_url})
        self.current["content"] = content if content is None or isinstance(content, str) else "<list>"


report = Report()

if __name__ == "__main__":
    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)  # its failures are in the report
    report.run("readme-completion", readme_completion)
    for style in ("parts", "openrouter"):
        for form in FORMS:
            for stream in (False, True):
                report.run(f"completion-{form}-{style}-{'stream' if stream else 'json'}", completion, style, form, stream)
    report.run("image-generation", image_generation)
    report.run("image-edit", image_edit)
    json.dump({"cases": report.cases}, sys.stdout)
