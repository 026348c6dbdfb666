"""The HTTP API: every endpoint, every bad input, the API key, range requests, index swaps."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient
from moment_search.indexer.query_encoder import PyTorchFallbackWarning

from moment_search.serve.app import create_app
from moment_search.serve.service import MAX_K, MAX_QUERY_CHARS, SearchService

from ..conftest import write_tiny_corpus
from .conftest import VIDEOS


@pytest.fixture(scope="module")
def service(served_index):
    service = SearchService(served_index, device="cpu")
    assert service.wait_ready(120) and service.health()["status"] == "ready"
    return service


@pytest.fixture(scope="module")
def client(service):
    return TestClient(create_app(service))


def test_health_search_and_cli_fields(client):
    assert client.get("/api/health").json()["status"] == "ready"
    body = client.get("/api/search", params={"q": "person does action number 2", "k": 3}).json()
    assert [m["rank"] for m in body["moments"]] == [1, 2, 3]
    assert set(body["moments"][0]) == {"rank", "video_id", "start_s", "end_s", "score", "stage"}
    assert {"encode_ms", "search_ms", "nms_ms", "total_ms"} <= set(body["timing_ms"])
    scores = [m["score"] for m in body["moments"]]
    assert scores == sorted(scores, reverse=True)


def test_post_many_queries_and_options(client):
    queries = ["person does action number 1", "person does action number 4"]
    body = client.post("/api/search", json={"queries": queries, "k": 2, "video": ["vid003"],
                                            "profile": True}).json()
    assert [r["query"] for r in body["results"]] == queries
    for result in body["results"]:
        assert {m["video_id"] for m in result["moments"]} == {"vid003"}
        moment = result["moments"][0]
        assert len(moment["profile"]) == int(-(-moment["duration"] // 1))
        assert max(v for v in moment["profile"] if v is not None) >= moment["score"] - 1e-4


@pytest.mark.parametrize("params, parameter", [
    ({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "q"),
    ({"q": "a", "k": 0}, "k"), ({"q": "a", "k": MAX_K + 1}, "k"), ({"q": "a", "k": "ten"}, "k"),
    ({"q": "a", "nms": 0}, "nms"), ({"q": "a", "nms": 1.5}, "nms"),
    ({"q": "a", "video": "nope"}, "video"), ({"q": "a", "rerank": "nope"}, "rerank"),
    ({"q": "a", "rerank_videos": 0}, "rerank_videos"), ({}, "q"),
])
def test_bad_input_is_a_4xx_naming_the_parameter(client, params, parameter):
    response = client.get("/api/search", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["parameter"] == parameter and response.json()["error"]


def test_bad_bodies(client):
    malformed = client.post("/api/search", content=b"{not json",
                            headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
    assert client.post("/api/search", json={"q": "a", "queries": ["b"]}).status_code == 400
    assert client.post("/api/search", json={"q": "a", "colour": 1}).json()["parameter"] == \
        "colour"
    huge = client.post("/api/search", json={"queries": ["word " * 1000] * 300})
    assert huge.status_code == 413


def test_index_and_video_endpoints(client, served_index):
    info = client.get("/api/index").json()
    assert info["videos_indexed"] == 6 and info["problems"] == []
    video = client.get("/api/videos/vid002").json()
    assert video["status"] == "indexed" and video["n_proposals"] == 36
    assert client.get("/api/videos/nope").status_code == 404
    assert client.get("/api/videos/vid005/file").status_code == 404  # no file recorded
    assert client.get("/docs").status_code == 404  # its CDN scripts are blank offline
    assert client.get("/openapi.json").json()["info"]["title"] == "moment-search"
    assert "moment-search" in client.get("/").text


@pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"real videos not found at {VIDEOS}")
def test_video_file_with_range_requests(client):
    whole = client.get("/api/videos/vid000/file")
    assert whole.status_code == 200 and len(whole.content) > 1000
    part = client.get("/api/videos/vid000/file", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert client.get("/api/videos/..%2F..%2Fetc%2Fpasswd/file").status_code == 404


def test_api_key(service):
    locked = TestClient(create_app(service, api_key="s3cret"))
    assert locked.get("/api/health").status_code == 200
    for url in ("/api/search?q=person", "/api/index", "/api/videos/vid001", "/",
                "/openapi.json"):
        assert locked.get(url).status_code == 401, url
        assert locked.get(url, headers={"X-API-Key": "wrong"}).status_code == 401
    assert locked.get("/api/search?q=person", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert locked.get("/api/index?key=s3cret").status_code == 200
    # public: the page's script and style (no data), so the page can load and ask for the key
    assert locked.get("/static/app.js").status_code == 200


def test_strict_types_and_one_error_shape(client):
    for body, parameter in (({"q": "a", "k": "5"}, "k"), ({"q": "a", "k": True}, "k"),
                            ({"q": "a", "profile": 1}, "profile"), ({"q": 5}, "q")):
        response = client.post("/api/search", json=body)
        assert response.status_code == 400, body
        assert response.json()["parameter"] == parameter, response.json()
    assert client.post("/api/search", json={"q": "a", "nms": 1}).status_code == 200  # 1 is 1.0
    neither = client.post("/api/search", json={"k": 3}).json()
    assert neither["parameter"] == "q" and "not both" not in neither["error"]
    unknown = client.get("/api/search", params={"q": "a", "colour": "red"})
    assert unknown.status_code == 400 and unknown.json()["parameter"] == "colour"
    nested = client.post("/api/search", content=b'{"q": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                         headers={"content-type": "application/json"})
    assert nested.status_code == 400 and set(nested.json()) == {"error", "parameter"}
    for response in (client.get("/no/such/page"), client.delete("/api/search")):
        assert set(response.json()) == {"error", "parameter"}, response.json()


def test_oversize_chunked_body_has_the_error_shape(client):
    def chunks():
        for _ in range(300):
            yield b"x" * 10_000
    response = client.post("/api/search", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["parameter"] == "body"


def test_a_recorded_video_file_missing_on_disk_says_so(tmp_path, tiny_model_dir):
    from moment_search.indexer.build import BuildConfig, build_index

    from .conftest import corpus_with_files

    corpus = corpus_with_files(tmp_path / "corpus")
    manifest = corpus / "videos.jsonl"
    gone = tmp_path / "gone.mp4"
    lines = [line.replace('"feature_rate": 1.0}', f'"feature_rate": 1.0, "video_path": '
                          f'"{gone}"}}') if '"vid005"' in line else line
             for line in manifest.read_text().splitlines()]
    manifest.write_text("\n".join(lines) + "\n")
    index = tmp_path / "index"
    build_index(corpus, index, tiny_model_dir, BuildConfig(shard_videos=3, device="cpu",
                                                          query_encoder=False))
    with pytest.warns(PyTorchFallbackWarning):  # built without its ONNX encoder
        service = SearchService(index, device="cpu")
        service.wait_ready(120)
    client = TestClient(create_app(service))
    answer = client.get("/api/videos/vid005/file").json()
    assert "missing on disk" in answer["error"] and str(gone) in answer["error"]


def test_a_running_server_sees_add_and_remove(tmp_path, tiny_model_dir):
    from moment_search.indexer.build import BuildConfig, build_index
    from moment_search.indexer.edit import add_videos, remove_videos

    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=6)
    index = tmp_path / "idx"
    build_index(corpus, index, tiny_model_dir, BuildConfig(shard_videos=2, device="cpu",
                                                          split="train"))
    service = SearchService(index, device="cpu")
    client = TestClient(create_app(service))
    search = {"q": "person does action number 2", "k": 20, "nms": 1.0}
    before = client.get("/api/search", params=search).json()
    assert "vid002" not in {m["video_id"] for m in before["moments"]}
    add_videos(corpus, index, BuildConfig(shard_videos=2, device="cpu"))
    after = client.get("/api/search", params=search).json()
    assert after["index_version"] == before["index_version"] + 1
    assert "vid002" in {m["video_id"] for m in after["moments"]}
    remove_videos(index, ["vid002"])
    gone = client.get("/api/search", params=search).json()
    assert "vid002" not in {m["video_id"] for m in gone["moments"]}
    shutil.rmtree(index)
