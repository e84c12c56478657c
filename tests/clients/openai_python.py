"""openai-python against the gateway: both request forms, both answer styles, streamed or not, Images API.

Run by tests/clients/test_openai_python.py as `python openai_python.py BASE_URL KEY` with the pinned
SDK (requirements.txt); prints one JSON object: per case, the pictures the SDK handed back, or the
error it raised. Every answer and chunk is also dumped with warnings as errors (`model_dump()` and
`to_json()`), as strict code does, and what that raised is reported. The parts between `README:`
and `END README` are the README's snippets, word for word.
"""
import base64
import io
import sys
import warnings

from openai import OpenAI

from case_report import FORMS, Report

BASE_URL, KEY = sys.argv[1], sys.argv[2]
PROMPT = [{"role": "user", "content": "a lighthouse at dusk"}]


def openrouter_style():
    # README: openai-python
    client = OpenAI(base_url=BASE_URL, api_key=KEY, default_headers={"X-Gateway-Answer-Style": "openrouter"})

    completion = client.chat.completions.create(
        model="local-image", messages=[{"role": "user", "content": "a lighthouse at dusk"}],
        modalities=["image", "text"], n=2)
    data_urls = [choice.message.model_extra["images"][0]["image_url"]["url"] for choice in completion.choices]
    # END README
    for index, data_url in enumerate(data_urls):
        report.picture(index, data_url)
    report.dumped(completion)


def openrouter_style_stream():
    client = OpenAI(base_url=BASE_URL, api_key=KEY, default_headers={"X-Gateway-Answer-Style": "openrouter"})
    # README: openai-python-stream
    stream = client.chat.completions.create(
        model="local-image", messages=[{"role": "user", "content": "a lighthouse at dusk"}],
        modalities=["image", "text"], stream=True)
    data_urls = []  # (choice index, data URL)
    for chunk in stream:
        for choice in chunk.choices:
            for image in (choice.delta.model_extra or {}).get("images", []):
                data_urls.append((choice.index, image["image_url"]["url"]))
        # END README
        report.dumped(chunk)
    for index, data_url in data_urls:
        report.picture(index, data_url)


def chat(style: str, form: str, stream: bool) -> None:
    """Any form in any style; pictures read from wherever that style puts them."""
    client = OpenAI(base_url=BASE_URL, api_key=KEY, default_headers={"X-Gateway-Answer-Style": style})
    answer = client.chat.completions.create(model="local-image", messages=PROMPT, n=2, stream=stream,
                                            **FORMS[form])
    for item in answer if stream else [answer]:
        for choice in item.choices:
            message = choice.delta if stream else choice.message
            for image in (message.model_extra or {}).get("images") or []:
                report.picture(choice.index, image["image_url"]["url"])
            for call in message.tool_calls or []:
                if call.type == "image_generation":
                    report.picture(choice.index, "data:image/png;base64," + call.model_extra["image_generation"]["result"])
        report.dumped(item)


def chat_with_token_details():
    """A provider whose usage has details (the Gemini fake): the strict dump must still pass."""
    client = OpenAI(base_url=BASE_URL, api_key=KEY, default_headers={"X-Gateway-Answer-Style": "openrouter"})
    completion = client.chat.completions.create(model="gemini-3.1-flash-image", messages=PROMPT,
                                                modalities=["image", "text"])
    report.picture(0, completion.choices[0].message.model_extra["images"][0]["image_url"]["url"])
    report.dumped(completion)


def images_generate():
    client = OpenAI(base_url=BASE_URL, api_key=KEY)
    # README: openai-python-images
    result = client.images.generate(model="local-image", prompt="a lighthouse at dusk", size="64x64", n=2)
    pictures = [base64.b64decode(item.b64_json) for item in result.data]
    # END README
    for index, item in enumerate(result.data):
        report.picture(index, "data:image/png;base64," + item.b64_json)
    report.usage(result.usage.input_tokens_details.text_tokens, result.usage.input_tokens_details.image_tokens)
    report.dumped(result)


def images_edit():
    client = OpenAI(base_url=BASE_URL, api_key=KEY)
    source = client.images.generate(model="local-image", prompt="a lighthouse", size="64x64").data[0].b64_json
    result = client.images.edit(model="local-image", prompt="make it night",
                                image=("in.png", io.BytesIO(base64.b64decode(source)), "image/png"), size="64x64")
    report.picture(0, "data:image/png;base64," + result.data[0].b64_json)
    report.usage(result.usage.input_tokens_details.text_tokens, result.usage.input_tokens_details.image_tokens)
    report.dumped(result)


def images_generate_stream():
    client = OpenAI(base_url=BASE_URL, api_key=KEY)
    for event in client.images.generate(model="local-image", prompt="a lighthouse", size="64x64", stream=True,
                                        partial_images=1):
        if event.type == "image_generation.completed":
            report.picture(0, "data:image/png;base64," + event.b64_json)
            report.usage(event.usage.input_tokens_details.text_tokens, event.usage.input_tokens_details.image_tokens)
        report.dumped(event)


class StrictReport(Report):
    """Also what dumping each answer strictly raised, and the Images API's input token details."""

    def run(self, name: str, case, *args) -> None:
        super().run(name, case, *args)
        self.current.setdefault("dump_errors", [])

    def usage(self, text_tokens: int, image_tokens: int) -> None:
        self.current["input_tokens_details"] = {"text_tokens": text_tokens, "image_tokens": image_tokens}

    def dumped(self, model) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                model.model_dump()
                model.to_json()
            except Exception as exc:
                self.current.setdefault("dump_errors", []).append(f"{type(exc).__name__}: {exc}"[:300])


report = StrictReport()

if __name__ == "__main__":
    report.run("readme-openrouter", openrouter_style)
    report.run("readme-openrouter-stream", openrouter_style_stream)
    report.run_chat_matrix("chat", chat)
    report.run("chat-token-details-openrouter-json", chat_with_token_details)
    report.run("images-generate", images_generate)
    report.run("images-edit", images_edit)
    report.run("images-generate-stream", images_generate_stream)
    report.print()
