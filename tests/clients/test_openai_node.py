"""openai-node (pinned in package-lock.json): raw calls, raw streams and the stream helpers, both forms, both styles."""
import pytest

from tests.clients.conftest import BIG, SMALL, each, known_failure, pictures_of

pytestmark = pytest.mark.clients
SCRIPT = "openai_node.mjs"

WORDS = "Placeholder image from the local provider"
TOOL_CALL = ("the stream helper finalizes every tool call as a function call and throws "
             "'missing choices[0].tool_calls[0].function.name' on image_generation")
CONCATENATED = "the stream helper concatenates delta.content as strings: a list of parts becomes '[object Object]'"


@pytest.mark.parametrize("case", [
    "readme-stream-helper",
    *[f"chat-modalities-{style}-{mode}" for style in ("parts", "openrouter")
      for mode in ("json", "stream", "stream-helper")],
])
def test_modalities_form_pictures(report, case):
    assert pictures_of(report[case]) == each(BIG, 2)


@pytest.mark.parametrize("case", [
    "chat-tool-parts-json", "chat-tool-parts-stream", known_failure("chat-tool-parts-stream-helper", reason=TOOL_CALL),
    "chat-tool-openrouter-json", "chat-tool-openrouter-stream", "chat-tool-openrouter-stream-helper",
])
def test_tool_form_pictures(report, case):
    assert pictures_of(report[case]) == each(SMALL, 2)


@pytest.mark.parametrize("case", [
    known_failure("chat-modalities-parts-stream-helper", reason=CONCATENATED),
    "chat-modalities-openrouter-stream-helper", "chat-tool-openrouter-stream-helper",
    "chat-modalities-openrouter-json", "chat-tool-openrouter-json", "chat-tool-parts-json",
])
def test_the_message_text_is_the_providers_words(report, case):
    """The first choice carries the local provider's sentence, as a string and nothing else."""
    first = report[case]["contents"][0]
    assert isinstance(first, str) and first.startswith(WORDS) and first.endswith(").")


@pytest.mark.parametrize("case, pictures", [("images-generate", each(SMALL, 2)), ("images-edit", each(SMALL))])
def test_images_api(report, case, pictures):
    assert pictures_of(report[case]) == pictures
    assert report[case]["input_tokens_details"] == {"text_tokens": 0, "image_tokens": 0}
