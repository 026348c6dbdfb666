import numpy as np
import torch

from moment_search.metrics import video_retrieval_metrics
from moment_search.models.video_text import VideoText, VideoTextConfig
from moment_search.train.video_text_trainer import VideoTextTrainConfig, VideoTextTrainer, info_nce
from tests.conftest import write_tiny_charades

MODEL = VideoTextConfig(feature_dim=8, hidden_dim=16, embed_dim=8)


def test_info_nce_prefers_the_diagonal():
    good = torch.eye(4) * 10
    assert info_nce(good) < info_nce(torch.zeros(4, 4)) < info_nce(-good)
    assert torch.isclose(info_nce(torch.zeros(4, 4)), torch.log(torch.tensor(4.0)))


def test_video_retrieval_metrics():
    logits = np.array([[3.0, 1.0, 2.0], [0.0, 1.0, 5.0]])
    metrics = video_retrieval_metrics(logits, np.array([0, 1]))  # ranks 1 and 2
    assert metrics["video_R@1"] == 50.0 and metrics["video_R@5"] == 100.0
    assert metrics["video_median_rank"] == 1.5


def test_embeddings_carry_the_temperature():
    model = VideoText(MODEL).eval()
    videos = model.encode_videos(torch.randn(3, 8, 8))
    norms = videos.norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, model.scale))


def test_training_lowers_the_loss_and_saves(tiny_corpus, tmp_path):
    charades = write_tiny_charades(tmp_path / "charades", tiny_corpus)
    config = VideoTextTrainConfig(epochs=3, batch_videos=4, extras=("charades-actions",),
                                  lr=1e-2)
    run = VideoTextTrainer(tiny_corpus, tmp_path / "run", MODEL, config, feature_rate=1.0,
                           charades_dir=charades)
    assert all(len(sources) == 3 for sources in run.sources)  # sta, actions, descriptions
    first = run.train_epoch(0)["total"]
    for epoch in range(1, 6):
        last = run.train_epoch(epoch)["total"]
    assert last < first
    best = run.fit(progress=lambda message: None)
    assert "video_R@10" in best
    assert VideoText.from_pretrained(tmp_path / "run" / "best").config == MODEL


def test_proposal_vectors_equal_span_by_span():
    from moment_search.geometry.proposals import proposal_index

    model = VideoText(VideoTextConfig(feature_dim=8, hidden_dim=16, embed_dim=8,
                                      level="moment")).eval()
    clips = torch.randn(2, 8, 8)
    index = proposal_index(8)
    by_span = torch.stack([model.encode_spans(clips, torch.tensor([list(index[p])] * 2))
                           for p in range(len(index))], 1)
    torch.testing.assert_close(model.encode_proposals(clips), by_span)
    whole = int(((index[:, 0] == 0) & (index[:, 1] == 7)).nonzero()[0][0])
    torch.testing.assert_close(model.encode_videos(clips), by_span[:, whole])


def test_moment_level_trains_on_the_sentence_windows(tiny_corpus, tmp_path):
    charades = write_tiny_charades(tmp_path / "charades", tiny_corpus)
    config = VideoTextTrainConfig(epochs=2, batch_videos=4, n_clips=8, lr=1e-2)
    moment = VideoTextConfig(feature_dim=8, hidden_dim=16, embed_dim=8, level="moment")
    run = VideoTextTrainer(tiny_corpus, tmp_path / "run", moment, config, feature_rate=1.0,
                           charades_dir=charades)
    sentences, descriptions = run.sources[0][0], run.sources[0][-1]
    assert (descriptions.spans == torch.tensor([0, 7])).all()  # whole video
    assert (sentences.spans[:, 0] <= sentences.spans[:, 1]).all()
    assert not (sentences.spans == torch.tensor([0, 7])).all()  # the sentence's own window
    first = run.train_epoch(0)["total"]
    for epoch in range(1, 6):
        last = run.train_epoch(epoch)["total"]
    assert last < first
    assert 0 <= run.validate()["video_R@10"] <= 100
