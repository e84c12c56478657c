"""Unit-test fixtures: a `responses` mock that fails the test when a registered call never happens."""
import pytest
import responses


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps
