"""Pure temporal geometry: spans, IoU, NMS, clip <-> seconds, and the 2D-TAN proposal map.

Depends on numpy and torch only; knows nothing of models, files or indexes.
"""

from moment_search.geometry.proposals import (
    SCALE_LAYERS,
    gather_proposals,
    map_max_pool,
    num_proposals,
    proposal_index,
    proposal_mask,
    proposal_spans,
    scale_layers_for,
)
from moment_search.geometry.spans import (
    as_spans,
    clip_span_to_seconds,
    nms,
    seconds_to_clip_index,
    soft_iou_labels,
    temporal_iou,
    temporal_iou_diag,
    temporal_iou_torch,
)

__all__ = [
    "SCALE_LAYERS",
    "as_spans",
    "clip_span_to_seconds",
    "gather_proposals",
    "map_max_pool",
    "nms",
    "num_proposals",
    "proposal_index",
    "proposal_mask",
    "proposal_spans",
    "scale_layers_for",
    "seconds_to_clip_index",
    "soft_iou_labels",
    "temporal_iou",
    "temporal_iou_diag",
    "temporal_iou_torch",
]
