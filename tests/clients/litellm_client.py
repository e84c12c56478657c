"""LiteLLM as a client library against the gateway: completion() in both forms and styles, streamed or
not; image_generation(); image_edit().

Run by tests/clients/test_litellm.py as `python litellm_client.py BASE_URL KEY` with the pinned
LiteLLM (requirements.txt); prints one JSON object: per case, the pictures LiteLLM handed back, or
the error it raised. The gateway is an OpenAI-compatible endpoint to LiteLLM: `openai/<model>` with
`api_base`. The parts between `README:` and `END README` are the README's snippets, word for word.
"""
import base64
import io
import logging
import sys

import litellm

from case_report import FORMS, Report

BASE_URL, KEY = sys.argv[1], sys.argv[2]
PROMPT = [{"role": "user", "content": "a lighthouse at dusk"}]


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


class CompletionReport(Report):
    """Also the message's content next to its pictures: a string, None, or "<list>" for content parts."""

    def picture(self, choice: int, data_url: str, content=None) -> None:
        super().picture(choice, data_url)
        self.current["content"] = content if content is None or isinstance(content, str) else "<list>"


report = CompletionReport()

if __name__ == "__main__":
    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)  # its failures are in the report
    report.run("readme-completion", readme_completion)
    report.run_chat_matrix("completion", completion)
    report.run("image-generation", image_generation)
    report.run("image-edit", image_edit)
    report.print()
