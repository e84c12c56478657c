"""The README's client snippets are the code the matrix runs: each marked part of a script is in the README."""
import re
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
README = (HERE.parents[1] / "README.md").read_text()
SCRIPTS = ["openai_python.py", "openai_node.mjs", "litellm_client.py", "vercel_ai.mjs"]
MARKED = re.compile(r"^[ \t]*(?:#|//) README: (?P<name>[\w-]+)\n(?P<code>.*?)^[ \t]*(?:#|//) END README$",
                    re.M | re.S)


def snippets() -> list[tuple[str, str, str]]:
    found = []
    for script in SCRIPTS:
        for match in MARKED.finditer((HERE / script).read_text()):
            found.append((script, match["name"], textwrap.dedent(match["code"]).strip("\n")))
    return found


def test_every_client_script_has_a_readme_snippet():
    assert {script for script, _, _ in snippets()} == set(SCRIPTS)


@pytest.mark.parametrize("script, name, code", snippets(), ids=[name for _, name, _ in snippets()])
def test_the_readme_shows_the_snippet_word_for_word(script, name, code):
    assert code in README, f"README.md lacks the `{name}` snippet of tests/clients/{script}, or it drifted"
