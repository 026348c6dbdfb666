"""Each library error becomes its own status and the parameter it carries; a bug is a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from moment_search.errors import BusyError, DataError, InputError, UnavailableError
from moment_search.serve.app import create_app
from moment_search.serve.service import BadRequest, _bad_request


class RaisingService:
    """A service whose searches fail with a given exception."""

    def __init__(self, error: BaseException):
        self.error = error

    def health(self) -> dict:
        return {"status": "ready"}

    async def search_async(self, texts, options):
        raise self.error


def _get(error: BaseException):
    client = TestClient(create_app(RaisingService(error)), raise_server_exceptions=False)
    return client.get("/api/search", params={"q": "a person"})


@pytest.mark.parametrize("error, status, parameter", [
    # the message names other parameters: the answer's parameter is the error's, not a guess
    (InputError("the video and nms options are fine; rerank too", parameter="k"), 400, "k"),
    (BadRequest("per_video", "expected an integer from 1 to 100, got 0"), 400, "per_video"),
    (UnavailableError("the index is still loading"), 503, None),
    (DataError("the index is damaged; run index verify"), 503, None),
    (BusyError("the index is being changed by pid 7"), 503, None),
])
def test_a_library_error_answers_its_status_and_parameter(error, status, parameter):
    response = _get(error)
    assert response.status_code == status
    assert response.json() == {"error": str(error), "parameter": parameter}


@pytest.mark.parametrize("error", [RuntimeError("internal state"), ValueError("a bug"),
                                   KeyError("video")])
def test_a_bug_is_a_500_in_the_error_shape_without_its_message(error):
    response = _get(error)
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"error", "parameter"} and body["parameter"] is None
    assert "internal error" in body["error"] and str(error) not in body["error"]


def test_a_searcher_input_error_keeps_its_parameter_in_the_service():
    bad = _bad_request(InputError("unknown video id(s) ['x'] with nms text", parameter="video"))
    assert bad.parameter == "video" and bad.status == 400
    assert _bad_request(InputError("text has no tokens")).parameter == "q"
