"""Choosing an index kind and its parameters: sizes, budgets, estimates (pure arithmetic)."""

from __future__ import annotations

import pytest
from moment_search.indexer import index_choice as ic


@pytest.mark.parametrize("text, expected", [("4G", 4 * 2**30), ("512M", 512 * 2**20),
                                            ("1.5GiB", int(1.5 * 2**30)), ("800k", 800 * 1024),
                                            ("2048", 2048), (" 3 gb ", 3 * 2**30), (123, 123),
                                            (None, None)])
def test_parse_bytes(text, expected):
    assert ic.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "4X", "-1G", "0", "4 G B"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ValueError, match="memory size"):
        ic.parse_bytes(text)


@pytest.mark.parametrize("n, budget, kind, refine", [
    (5, "1G", "flat", None), (50_000, "1G", "flat", None), (62_500, "4G", "flat", None),
    (62_501, "4G", "ivf", None), (200_000, "4G", "ivf", None), (1_000_000, "4G", "ivf", None),
    (150_000, "10M", "ivfpq", None),
    (10_000_000, "4G", "ivfpq", None), (10_000_000, None, "ivf", None)])
def test_auto_choice_at_several_sizes(n, budget, kind, refine):
    spec = ic.choose_index(n, 128, budget)
    assert spec.kind == kind and spec.params.get("refine") == refine
    assert spec.reason and "\n" not in spec.reason
    if budget is not None:
        assert ic.estimated_bytes(spec, n, 128) <= ic.parse_bytes(budget)
    if kind == "ivfpq":
        assert spec.params["m"] == 32 and "recall drops" in spec.reason
    if kind in ("ivf", "ivfpq"):
        nlist = spec.params["nlist"]
        assert nlist & (nlist - 1) == 0 and nlist <= n // 39
        assert 1 <= spec.params["nprobe"] <= nlist


def test_explicit_kinds_and_refine_only_when_it_fits():
    assert ic.choose_index(1_000_000, 128, "1G", "ivfpq").params["refine"] == "flat"
    assert ic.choose_index(1_000_000, 128, "200M", "ivfpq").params["refine"] is None
    hnsw = ic.choose_index(1_000_000, 128, None, "hnsw")
    assert hnsw.kind == "hnsw" and hnsw.params["ef_search"] >= 100
    assert ic.choose_index(100, 96, None, "ivfpq").kind == "flat"  # tiny: falls back
    with pytest.raises(ValueError, match="unknown index kind 'lsh'"):
        ic.choose_index(10, 128, None, "lsh")


def test_budget_too_small_names_both_numbers():
    with pytest.raises(ValueError, match=r"needs ~.*\(\d+ bytes\).*budget is 1\.0 MiB \(1048576"):
        ic.choose_index(100_000_000, 128, "1M")
    with pytest.raises(ValueError, match="budget"):
        ic.choose_index(1_000, 128, "1k")


def test_pq_m_divides_width():
    assert ic.pq_m_for(128) == 32 and ic.pq_m_for(100) == 25 and ic.pq_m_for(30) == 6


def test_spec_round_trips_through_a_dict():
    spec = ic.choose_index(10**6, 128, "4G")
    assert ic.IndexSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown index kind"):
        ic.IndexSpec("annoy")
