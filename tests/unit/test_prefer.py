"""The Prefer header (RFC 7240): lists, parameters, quoting, case, and preferences we do not know."""
import pytest
from werkzeug.datastructures import Headers

from app.jobs.prefer import asks_async, preferences


@pytest.mark.parametrize("values", [
    ["respond-async"],
    ["Respond-Async"],
    ["RESPOND-ASYNC, wait=10"],
    ["wait=10, respond-async"],
    ["return=minimal", "respond-async"],            # the header sent twice
    ["respond-async; foo=bar"],                      # parameters
    ['respond-async; note="a, b; c"'],               # separators inside a quoted parameter value
    ['  respond-async  ,  handling = strict '],      # whitespace
    ["respond-async=\"\""],                          # an empty value is no value (RFC 7240 section 2)
    ['x="unterminated, respond-async'],              # a broken neighbour does not hide it
    [",, respond-async ,,"],                         # empty list elements
])
def test_respond_async_is_found(values):
    headers = Headers([("Prefer", value) for value in values])
    assert asks_async(headers)


@pytest.mark.parametrize("values", [
    [],
    ["wait=10"],
    ["return=representation, handling=lenient"],
    ["respond-asynchronously"],
    ["respond_async"],
    ['foo="respond-async"'],                         # a value, not a preference
    ["foo; respond-async"],                          # a parameter of another preference
    ["respond-async="],                              # malformed: ignored, not guessed
    ["@respond-async"],
])
def test_other_preferences_are_ignored(values):
    assert not asks_async(Headers([("Prefer", value) for value in values]))


def test_values_and_parameters_are_read_and_the_first_occurrence_wins():
    found = preferences(['Wait=10; X=1; y="two words"', "wait=20", "respond-async"])
    assert found["wait"] == ("10", {"x": "1", "y": "two words"})
    assert found["respond-async"] == (None, {})


def test_a_plain_mapping_works_too():
    assert asks_async({"Prefer": "respond-async"}) and not asks_async({})
