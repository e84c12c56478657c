"""The retired-models table: which model names their vendor shut down, when, and what replaces them.

The one place that knows it. The gateway never refuses a retired name itself: a relay (a routing-file
channel, OpenRouter, a proxy behind <PROVIDER>_BASE_URL) may still serve it. Only when an upstream
answers that it does not serve the model does `explained` turn that vague answer into a 404
`model_retired` naming the date and the successor. /v1/models lists no retired model (a test holds
the providers' `known_models` to this table).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from app.core.errors import ModelRetired, UpstreamModelNotFound
from app.providers.capabilities import matches


@dataclass(frozen=True)
class Retirement:
    patterns: tuple[str, ...]      # model names, shell patterns matched case-insensitively (capabilities.matches)
    date: str                      # the day the vendor shut it down, ISO 8601
    successors: tuple[str, ...]    # what to ask for instead, best first
    vendor: str
    source: str                    # where the date and the successor were read

    def message(self, model: str, provider: str) -> str:
        instead = " or ".join(f"'{name}'" for name in self.successors)
        return (f"The model '{model}' was retired by {self.vendor} on {self.date}: {provider} no longer serves it. "
                f"Use {instead} instead.")


# OpenAI's recommended replacement for the image models it shut down on 2026-12-01 (its deprecations page);
# the same pair is named for the older ones, whose own pages once pointed at models since superseded.
_OPENAI_NOW = ("gpt-image-2.6-sunburst", "gpt-image-2.6-flare")
_DEPRECATIONS = "https://developers.openai.com/api/docs/deprecations"
_GEMINI_NOW = ("gemini-3.1-flash-image",)
# First match wins: the more specific patterns come first.
RETIRED: tuple[Retirement, ...] = (
    Retirement(("gpt-image-1-mini*", "gpt-image-1.5*", "chatgpt-image-latest*"), "2026-12-01", _OPENAI_NOW,
               "OpenAI", _DEPRECATIONS),
    Retirement(("gpt-image-1*",), "2026-10-23", _OPENAI_NOW, "OpenAI",
               _DEPRECATIONS + " (as quoted on 2026-10-15 by importstatic.com)"),
    Retirement(("dall-e-2*", "dall-e-3*"), "2026-05-12", _OPENAI_NOW, "OpenAI",
               "https://developers.openai.com/api/docs/models/dall-e-2 (removed from the API), "
               "https://github.com/Niek/chatgpt-web/issues/427 (date)"),
    Retirement(("gemini-2.5-flash-image*",), "2026-10-02", _GEMINI_NOW, "Google",
               "reference/providers.md, December 2026 update"),
    Retirement(("imagen-4*",), "2026-08-17", _GEMINI_NOW, "Google",
               "https://github.com/azmym/gemini-mcp/releases/tag/v0.2.1 (all Imagen 4 endpoints answer 404 from "
               "2026-08-17)"),
    Retirement(("google/gemini-2.5-flash-image*",), "2026-10-02", ("google/gemini-3.1-flash-image-preview",),
               "Google", "reference/providers.md, December 2026 update (Google's date; OpenRouter relays it)"),
    # Volcengine Ark (China, doubao-* ids); BytePlus's own ids (seedream-4-5-..., no doubao- prefix) are not
    # covered: no notice of a BytePlus shutdown was found
    Retirement(("doubao-seedream-4-0*", "doubao-seedream-4-5*", "doubao-seedream-5-0-2*", "doubao-seedream-5-0-lite*"),
               "2026-11-24", ("doubao-seedream-5-0-pro-260628",), "Volcengine",
               "https://github.com/orgs/cometapi-dev/discussions/152 and the Modelwright v0.1.35 release notes "
               "(relays passing on Volcengine's notice; no Volcengine page was readable here)"),
)


def retirement(model: str) -> Retirement | None:
    """The table's row for `model`, or None when it is not retired."""
    return next((row for row in RETIRED if matches(model, row.patterns)), None)


@contextmanager
def explained(model: str, provider: str) -> Iterator[None]:
    """An upstream "no such model" about a retired model becomes `model_retired`; anything else passes."""
    try:
        yield
    except UpstreamModelNotFound as error:
        row = retirement(model)
        if row is None:
            raise
        raise ModelRetired(row.message(model, provider), param="model", provider=error.provider) from None
