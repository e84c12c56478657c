"""openai-python (pinned in requirements.txt) reads every picture in both styles; its strict dump passes in `openrouter`."""
import pytest

from tests.clients.conftest import BIG, SMALL, each, known_failure, pictures_of

pytestmark = pytest.mark.clients
SCRIPT = "openai_python.py"

LIST_CONTENT = "the SDK types message.content as str: a list of parts warns on model_dump (parts style)"
TOOL_TYPE = "the SDK knows function and custom tool calls only: type image_generation warns on model_dump"


@pytest.mark.parametrize("case, pictures", [
    ("readme-openrouter", each(BIG, 2)),
    ("readme-openrouter-stream", each(BIG)),
    *[(f"chat-modalities-{style}-{mode}", each(BIG, 2)) for style in ("parts", "openrouter") for mode in ("json", "stream")],
    *[(f"chat-tool-{style}-{mode}", each(SMALL, 2)) for style in ("parts", "openrouter") for mode in ("json", "stream")],
    ("chat-token-details-openrouter-json", each((8, 8))),
    ("images-generate", each(SMALL, 2)),
    ("images-edit", each(SMALL)),
    ("images-generate-stream", each(SMALL)),
])
def test_every_picture_arrives_whole(report, case, pictures):
    assert pictures_of(report[case]) == pictures


@pytest.mark.parametrize("case", [
    "readme-openrouter", "readme-openrouter-stream", "chat-modalities-openrouter-json",
    "chat-modalities-openrouter-stream", "chat-tool-openrouter-json", "chat-tool-openrouter-stream",
    "chat-token-details-openrouter-json", "images-generate", "images-edit", "images-generate-stream",
    "chat-tool-parts-stream",
    known_failure("chat-modalities-parts-json", reason=LIST_CONTENT),
    known_failure("chat-modalities-parts-stream", reason=LIST_CONTENT),
    known_failure("chat-tool-parts-json", reason=TOOL_TYPE),
])
def test_model_dump_with_warnings_as_errors(report, case):
    assert report[case]["dump_errors"] == []


@pytest.mark.parametrize("case", ["images-generate", "images-edit", "images-generate-stream"])
def test_images_usage_has_the_input_token_details_the_sdk_types_require(report, case):
    assert report[case]["input_tokens_details"] == {"text_tokens": 0, "image_tokens": 0}
