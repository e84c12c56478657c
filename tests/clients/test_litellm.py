"""LiteLLM as a client library (pinned in requirements.txt): completion() both forms, streamed or not; images."""
import pytest

from tests.clients.conftest import BIG, SMALL, each, known_failure, pictures_of

pytestmark = pytest.mark.clients
SCRIPT = "litellm_client.py"

LIST_CONTENT = "completion() validates message.content as a string: a list of parts is 'Invalid response object'"
TOOL_CALL = "completion() builds every tool call as a function call: image_generation has no `function`"
DROPPED = "the stream parser fails on a tool call delta without `function`, logs it and drops the picture"


@pytest.mark.parametrize("case, pictures", [
    ("readme-completion", each(BIG)),
    known_failure("completion-modalities-parts-json", each(BIG), reason=LIST_CONTENT),
    ("completion-modalities-parts-stream", each(BIG)),
    known_failure("completion-tool-parts-json", each(SMALL), reason=TOOL_CALL),
    known_failure("completion-tool-parts-stream", each(SMALL), reason=DROPPED),
    ("completion-modalities-openrouter-json", each(BIG)),
    ("completion-modalities-openrouter-stream", each(BIG)),
    ("completion-tool-openrouter-json", each(SMALL)),
    ("completion-tool-openrouter-stream", each(SMALL)),
    ("image-generation", each(SMALL, 2)),
    ("image-edit", each(SMALL)),
])
def test_every_picture_arrives_whole(report, case, pictures):
    assert pictures_of(report[case]) == pictures


@pytest.mark.parametrize("case", [f"completion-{form}-openrouter-{mode}" for form in ("modalities", "tool")
                                  for mode in ("json", "stream")])
def test_the_message_content_is_the_providers_words(report, case):
    assert report[case]["content"].startswith("Placeholder image from the local provider")


def test_image_edit_reads_the_usage_details(report):
    """LiteLLM validates the edit answer with OpenAI's type: `input_tokens_details` is required."""
    assert report["image-edit"]["input_tokens_details"] == {"text_tokens": 0, "image_tokens": 0}
