"""What a Python client script got, case by case, printed as one JSON object for the test to check."""
import json
import sys

STYLES = ("parts", "openrouter")
# the two ways to ask for a picture in chat (DESIGN §2); the tool asks for a small size
FORMS = {"modalities": {"modalities": ["image", "text"]},
         "tool": {"tools": [{"type": "image_generation", "image_generation": {"size": "64x64"}}]}}


class Report:
    """Per case: the pictures (choice index, data URL) and anything else the script records, or the error."""

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

    def run_chat_matrix(self, prefix: str, case) -> None:
        """`case(style, form, stream)` for every style, form and streaming: cases `<prefix>-<form>-<style>-json|stream`."""
        for style in STYLES:
            for form in FORMS:
                for stream in (False, True):
                    self.run(f"{prefix}-{form}-{style}-{'stream' if stream else 'json'}", case, style, form, stream)

    def picture(self, choice: int, data_url: str) -> None:
        self.current["pictures"].append({"choice": choice, "data_url": data_url})

    def print(self) -> None:
        json.dump({"cases": self.cases}, sys.stdout)
