"""How one request's answer is written (DESIGN §10), decided once by the view and read by every renderer."""
from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import InvalidRequest

STYLE_HEADER = "X-Gateway-Answer-Style"
PARTS = "parts"            # DESIGN §3: content parts + `images`, and `image_generation` tool calls
OPENROUTER = "openrouter"  # `content` a string, pictures in `images` only, no tool calls
ANSWER_STYLES = (PARTS, OPENROUTER)
DEFAULT_ANSWER_STYLE = PARTS


@dataclass(frozen=True)
class AnswerOptions:
    """Everything that changes how an answer is rendered but not what is generated.

    One value per request, built by the view before the generation starts and passed to the chat,
    Images API and stream renderers alike, so a stream and a JSON answer can never disagree.
    """

    style: str = DEFAULT_ANSWER_STYLE

    @property
    def content_parts(self) -> bool:
        """The default style: pictures as content parts (and tool calls when the tool asked)."""
        return self.style == PARTS


def choose_style(header: str | None, key_default: str | None, deployment_default: str) -> str:
    """The request's header wins, then its client key's default, then GATEWAY_ANSWER_STYLE.

    An empty header counts as absent (clients often send one from an unset variable); any other
    value outside the styles is the caller's mistake, answered 400 before anything is generated.
    """
    if header is not None and header.strip():
        style = header.strip().lower()
        if style not in ANSWER_STYLES:
            raise InvalidRequest(f"The {STYLE_HEADER} header must be one of {', '.join(ANSWER_STYLES)}; "
                                 f"got {header.strip()[:40]!r}", param=STYLE_HEADER, code="invalid_answer_style")
        return style
    if key_default in ANSWER_STYLES:
        return key_default
    return deployment_default
