"""The HTTP API's relevance fields: per moment, and the answer's "no good match" flag."""

import pytest
from fastapi.testclient import TestClient

from moment_search.serve.app import create_app
from moment_search.serve.service import SearchService


@pytest.fixture(scope="module")
def client(calibrated_index):
    service = SearchService(calibrated_index, device="cpu", parallel=1)
    assert service.wait_ready(120) and service.health()["status"] == "ready"
    return TestClient(create_app(service))


def test_get_and_post_carry_relevance_and_the_flag(client):
    body = client.get("/api/search", params={"q": "person does action number 2", "k": 3}).json()
    assert body["no_good_match"] is False
    assert all(0.0 <= m["relevance"] <= 1.0 for m in body["moments"])
    posted = client.post("/api/search", json={"queries": ["a dolphin", "a car"], "k": 2}).json()
    assert [r["no_good_match"] for r in posted["results"]] == [False, False]


def test_an_uncalibrated_index_has_no_relevance_fields(served_index):
    service = SearchService(served_index, device="cpu", parallel=1)
    assert service.wait_ready(120)
    body = TestClient(create_app(service)).get("/api/search", params={"q": "a person"}).json()
    assert "no_good_match" not in body
    assert all("relevance" not in m for m in body["moments"])
