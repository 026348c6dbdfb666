"""Shared fixtures: the path of ../shared/data and a tiny synthetic corpus written to disk."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest


def _shared_data() -> Path:
    """``../shared/data`` beside the repository as the tests were reached (a symlinked checkout
    keeps its own ``../shared``), else beside the repository's real location. Symlinks inside
    are not resolved: compare paths the code under test resolved with ``Path.samefile``."""
    here = Path(__file__).absolute().parents[1].parent / "shared" / "data"
    real = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return here if here.exists() or not real.exists() else real


SHARED_DATA = _shared_data()
CHARADES_CLIP = SHARED_DATA / "charades-sta-clip"


def require_shared_data(path: Path = SHARED_DATA) -> Path:
    """Skip the calling test, saying why, when ../shared/data (or a part of it) is absent."""
    if not path.exists():
        pytest.skip(f"real data not found at {path} (expected ../shared/data beside the repo)")
    return path


def write_tiny_corpus(root: Path, n_videos: int = 6, width: int = 8, seed: int = 0) -> Path:
    """A corpus directory: features/ (.npy, 1 feature/s), train.jsonl and val.jsonl.

    Each query's window sits where its video's features are "bright" (a planted signal), so a
    model can learn it.
    """
    rng = np.random.default_rng(seed)
    (root / "features").mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "val": []}
    for v in range(n_videos):
        video_id = f"vid{v:03d}"
        length = int(rng.integers(12, 40))
        features = rng.normal(size=(length, width)).astype(np.float32)
        start = int(rng.integers(0, length - 6))
        end = start + int(rng.integers(3, 6))
        features[start:end, v % width] += 3.0
        np.save(root / "features" / f"{video_id}.npy", features)
        split = "val" if v % 3 == 2 else "train"
        splits[split].append({
            "qid": f"{split}-{v}", "query": f"person does action number {v % width}",
            "vid": video_id, "duration": float(length), "relevant_windows": [[start, end]],
        })
    for split, rows in splits.items():
        with open(root / f"{split}.jsonl", "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows)
    return root


@pytest.fixture()
def tiny_corpus(tmp_path: Path) -> Path:
    """A fresh tiny corpus directory (see :func:`write_tiny_corpus`)."""
    return write_tiny_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained, seeded FVMR checkpoint sized for the tiny corpus (8-d features, N = 8)."""
    import torch

    from moment_search.models.fvmr import FVMR, FVMRConfig

    torch.manual_seed(0)
    model = FVMR(FVMRConfig(feature_dim=8, n_clips=8, hidden_dim=16, space_dim=8, dropout=0.0))
    path = tmp_path_factory.mktemp("models") / "tiny-fvmr"
    model.eval().save_pretrained(path, extra={"feature_rate": 1.0, "max_tokens": 32})
    return path


@pytest.fixture(scope="session")
def session_corpus(tmp_path_factory) -> Path:
    """A tiny corpus shared by read-only tests."""
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "corpus", n_videos=9)


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, session_corpus, tiny_model_dir) -> Path:
    """A flat index of the session corpus, built once; tests must not modify it."""
    from moment_search.indexer.build import BuildConfig, build_index

    out = tmp_path_factory.mktemp("index") / "index"
    build_index(session_corpus, out, tiny_model_dir, BuildConfig(shard_videos=4, device="cpu"))
    return out


@pytest.fixture(scope="session")
def searcher(built_index):
    """The Searcher over :func:`built_index`."""
    from moment_search.search.searcher import Searcher

    return Searcher.open(built_index, device="cpu")


@pytest.fixture(scope="session")
def tiny_pln_dir(tmp_path_factory) -> Path:
    """An untrained, seeded PLN checkpoint for the tiny corpus (8-d features, stages 4 -> 8)."""
    import torch

    from moment_search.models.pln import PLN, PLNConfig

    torch.manual_seed(0)
    model = PLN(PLNConfig(feature_dim=8, stage_clips=(4, 8), hidden_dim=8, lstm_layers=1))
    path = tmp_path_factory.mktemp("models") / "tiny-pln"
    model.eval().save_pretrained(path, extra={"feature_rate": 1.0, "max_tokens": 32,
                                              "strategy": 1, "nms_threshold": 0.5})
    return path


@pytest.fixture(scope="session")
def tiny_drn_dir(tmp_path_factory) -> Path:
    """An untrained, seeded DRN checkpoint for the tiny corpus (8-d features, 8 segments), its
    weights perturbed so that the heads do not all start at the same prior score."""
    import torch

    from moment_search.models.drn import DRN, DRNConfig

    torch.manual_seed(0)
    model = DRN(DRNConfig(feature_dim=8, lstm_dim=4, n_segments=8, channels=4, fpn_dim=8,
                          position_dim=4, score_threshold=0.0))
    for parameter in model.parameters():
        parameter.data += 0.1 * torch.randn_like(parameter)
    path = tmp_path_factory.mktemp("models") / "tiny-drn"
    model.eval().save_pretrained(path, extra={"feature_rate": 1.0, "max_tokens": 32,
                                              "nms_threshold": 0.6})
    return path


@pytest.fixture(scope="session")
def tiny_lpnet_dir(tmp_path_factory) -> Path:
    """An untrained, seeded LPNet checkpoint for the tiny corpus (8-d features, 8 clips, 6
    proposals)."""
    import torch

    from moment_search.models.lpnet import LPNet, LPNetConfig

    torch.manual_seed(0)
    model = LPNet(LPNetConfig(feature_dim=8, hidden_dim=8, n_heads=2, n_conv=1, kernel=3,
                              n_clips=8, n_proposals=6, n_samples=4, dynamic_dim=4))
    path = tmp_path_factory.mktemp("models") / "tiny-lpnet"
    model.eval().save_pretrained(path, extra={"feature_rate": 1.0, "max_tokens": 32,
                                              "nms_threshold": 0.5})
    return path


CHARADES_HEADER = ("id,subject,scene,quality,relevance,verified,script,objects,descriptions,"
                   "actions,length\n")


def write_tiny_charades(root: Path, corpus_dir: Path) -> Path:
    """A Charades CSV + class list for the videos of a tiny corpus (both splits), in ``root``.

    Each video gets two action segments (one of them running past the video's end, as real rows
    do), one description and a two-sentence script.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "Charades_v1_classes.txt").write_text(
        "c000 Holding some clothes\nc001 Opening a closet/cabinet\n"
        "c002 Someone is laughing\n")
    rows = []
    for split in ("train", "val"):
        for line in (corpus_dir / f"{split}.jsonl").read_text().splitlines():
            entry = json.loads(line)
            length = entry["duration"]
            actions = f"c001 1.0 4.0;c002 2.0 {length + 5:.1f}"
            rows.append(f'{entry["vid"]},S,Kitchen,6,7,Yes,"A person cooks. They laugh.",'
                        f'pot;door,"A person opens a cabinet.",{actions},{length}\n')
    (root / "Charades_v1_test_sta1000.csv").write_text(CHARADES_HEADER + "".join(rows))
    return root


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL cluster for the session (see tests/postgres.py); skips, saying why,
    when PostgreSQL is missing, unless MOMENT_SEARCH_REQUIRE_POSTGRES is set."""
    from .postgres import require_postgres, start_cluster, stop_cluster

    cluster = start_cluster(require_postgres())
    yield cluster
    stop_cluster(cluster)


@pytest.fixture()
def postgres_url(postgres_cluster) -> str:
    """The SQLAlchemy URL of a fresh, empty database on :func:`postgres_cluster`, dropped after."""
    from .postgres import admin

    name = f"t{uuid.uuid4().hex[:12]}"
    admin(postgres_cluster, f"CREATE DATABASE {name}")
    yield postgres_cluster.url(name)
    admin(postgres_cluster, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def tiny_fian_dir(tmp_path_factory) -> Path:
    """An untrained, seeded FIAN checkpoint for the tiny corpus (8-d features, 16 steps)."""
    import torch

    from moment_search.models.fian import FIAN, FIANConfig

    torch.manual_seed(0)
    model = FIAN(FIANConfig(feature_dim=8, hidden_dim=8, heads=2, n_steps=16, kernels=(4, 6)))
    path = tmp_path_factory.mktemp("models") / "tiny-fian"
    model.eval().save_pretrained(path, extra={"feature_rate": 1.0, "max_tokens": 32,
                                              "nms_threshold": 0.5})
    return path


@pytest.fixture(scope="session")
def tiny_ensemble_dir(tmp_path_factory, tiny_drn_dir, tiny_fian_dir) -> Path:
    """An ensemble of the tiny DRN and FIAN checkpoints."""
    from moment_search.models.ensemble import Ensemble, EnsembleConfig

    path = tmp_path_factory.mktemp("models") / "tiny-ensemble"
    return Ensemble.save(path, EnsembleConfig(("drn", "fian"),
                                              (str(tiny_drn_dir), str(tiny_fian_dir))))


def calibrate_index(index_dir: Path, bias: float, threshold: float,
                    familiarity_weight: float = 0.0, score_weight: float = 1.0) -> None:
    """Write a relevance calibration into an index's model folder: a bank of 3 seeded unit
    vectors of the model's width; with ``familiarity_weight`` 0 the top moment's relevance is
    exactly ``sigmoid(bias)``."""
    from moment_search.indexer.store import MODEL_DIR

    from moment_search.models.base import model_fingerprint
    from moment_search.search.relevance import RelevanceModel

    model_dir = Path(index_dir) / MODEL_DIR
    width = json.loads((model_dir / "config.json").read_text())["config"]["space_dim"]
    bank = np.random.default_rng(0).normal(size=(3, width)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    model_id, config_hash = model_fingerprint(model_dir)
    RelevanceModel(bias, familiarity_weight, score_weight, threshold, bank, model_id,
                   config_hash).save(model_dir)


@pytest.fixture(scope="session")
def calibrated_index(tmp_path_factory, session_corpus, tiny_model_dir) -> Path:
    """A flat index of the session corpus whose model carries a relevance calibration (top
    relevance sigmoid(1) = 0.73, threshold 0.5: every answer a good match)."""
    from moment_search.indexer.build import BuildConfig, build_index

    out = tmp_path_factory.mktemp("calibrated") / "index"
    build_index(session_corpus, out, tiny_model_dir, BuildConfig(shard_videos=4, device="cpu"))
    calibrate_index(out, bias=1.0, threshold=0.5)
    return out
