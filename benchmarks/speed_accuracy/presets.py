"""How much the speed-accuracy report measures (the small / medium / large presets), and which
models (``--models``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError


@dataclass(frozen=True)
class Preset:
    """One size of the report.

    Attributes:
        name: small | medium | large.
        corpus_queries: queries of the split answered by every corpus strategy (a seeded sample
            of the split; None: all of them).
        rerank_videos: the M values of the cascade (top M videos re-scored).
        rerank_weight: fusion weight of the fast path in the cascade.
        scale_videos: corpus sizes (videos) of the index scaling.
        scale_queries: queries timed at each scaling size (recall checked on the same ones).
        scan_videos: sizes at which the cross-modal scan is measured in the scaling (at most the
            real videos available; larger sizes are extrapolated).
        scan_queries: queries timed at each measured scan size.
        memory_budget: the index memory budget at scale (the indexer's choice follows it).
        warmup: queries run untimed before each timed pass.
    """

    name: str
    corpus_queries: int | None
    rerank_videos: tuple[int, ...]
    rerank_weight: float
    scale_videos: tuple[int, ...]
    scale_queries: int
    scan_videos: tuple[int, ...]
    scan_queries: int
    memory_budget: str = "4G"
    warmup: int = 3

    def __post_init__(self) -> None:
        if not self.rerank_videos or min(self.rerank_videos) < 1:
            raise InputError(f"preset {self.name!r}: rerank_videos needs at least one M >= 1, "
                             f"got {self.rerank_videos}")
        if not self.scale_videos or not self.scan_videos:
            raise InputError(f"preset {self.name!r}: scale_videos and scan_videos must not be "
                             f"empty")


PRESETS = {
    "small": Preset("small", 100, (5, 10, 30), 0.5, (150, 1_000, 10_000), 50, (150, 1_000), 3),
    "medium": Preset("medium", None, (5, 10, 30, 100), 0.5, (150, 1_000, 10_000, 100_000), 100,
                     (150, 1_000), 10, memory_budget="12G"),
    "large": Preset("large", None, (5, 10, 30, 100), 0.5,
                    (150, 1_000, 10_000, 100_000, 1_000_000), 100, (150, 1_000), 10,
                    memory_budget="16G"),
}


def get_preset(name: str) -> Preset:
    """The preset ``name``; ValueError lists the known ones."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]


DEFAULT_MODELS = "fvmr,pln"  # what the reports time when no model is named (shipped checkpoints)


def default_models() -> dict[str, Path | None]:
    """:data:`DEFAULT_MODELS` parsed (a fresh dict per call)."""
    return parse_models(DEFAULT_MODELS)


def parse_models(text: str) -> dict[str, Path | None]:
    """``"fvmr,pln=DIR"`` -> ``{"fvmr": None, "pln": Path("DIR")}`` (None: shipped checkpoint).

    Raises:
        ValueError: an empty list or a malformed item (named).
    """
    models: dict[str, Path | None] = {}
    for item in (part.strip() for part in text.split(",")):
        name, sep, path = item.partition("=")
        if not name or (sep and not path):
            raise InputError(f"--models expects NAME or NAME=CHECKPOINT_DIR items separated by "
                             f"commas, got {item!r} in {text!r}")
        models[name] = Path(path) if sep else None
    return models
