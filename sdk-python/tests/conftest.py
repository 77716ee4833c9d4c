import os

import pytest

from airlock import Airlock


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: these tests need a running Airlock (test/e2e/sdk-python.test.ts starts one)")
    return value


@pytest.fixture
def url() -> str:
    return _need("AIRLOCK_URL")


@pytest.fixture
def key() -> str:
    return _need("AIRLOCK_API_KEY")


@pytest.fixture
def client(url: str, key: str):
    with Airlock(url, key) as c:
        yield c
