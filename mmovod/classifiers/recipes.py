"""The views each image-exemplar classifier recipe encodes (plain settings, importable without torch)."""
from __future__ import annotations

from mmovod.clip.crops import AGGREGATOR_CONTEXT, TTA_CONTEXT
from mmovod.clip.specs import ViewSpec

AVERAGE_VIEWS = ViewSpec(context=TTA_CONTEXT, workers=8)
"""Views of the averaged classifier (`get_exemplars_tta`)."""
AGGREGATOR_VIEWS = ViewSpec(context=AGGREGATOR_CONTEXT, workers=4)
"""Views of the aggregated classifier (`generate_vision_classifier_agg`)."""
