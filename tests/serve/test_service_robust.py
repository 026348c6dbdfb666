"""The service under trouble: a client that gave up, a bad sentence in a batch of good ones."""

from __future__ import annotations

import time

import pytest

from moment_search.serve.service import BadRequest, SearchOptions, SearchService, _Job


@pytest.fixture(scope="module")
def service(served_index):
    service = SearchService(served_index, device="cpu", parallel=1)
    assert service.wait_ready(120) and service.health()["status"] == "ready"
    return service


def test_a_cancelled_job_is_dropped_and_the_worker_lives_on(service):
    options = SearchOptions(k=2)
    with service._reopen_lock:  # the worker takes the first job, then waits here
        first = service._submit(["person does action number 1"], options)[0]
        time.sleep(0.5)
        second = service._submit(["person does action number 2"], options)[0]
        assert second.answer.cancel()  # its client gave up while it waited in the queue
    assert first.answer.result(timeout=60)["moments"]
    third = service._submit(["person does action number 3"], options)[0]
    assert third.answer.result(timeout=60)["moments"]  # the worker is still alive


def test_a_bad_sentence_fails_only_its_own_request(service):
    good, bad = _Job("person does action number 1", SearchOptions(k=2)), \
        _Job("\u200b", SearchOptions(k=2))
    for job in (good, bad):
        job.answer.set_running_or_notify_cancel()
    service._answer([good, bad])
    assert good.answer.result(timeout=10)["moments"]
    with pytest.raises(BadRequest, match="no word pieces"):
        bad.answer.result(timeout=10)
