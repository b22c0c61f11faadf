"""The classifiers build_classifiers writes, by file stem, in the order it computes them."""
from __future__ import annotations

TEXT, DESCRIPTIONS, AVERAGE, AGGREGATED = "text", "descriptions", "vision-average", "vision-aggregated"
MM_AVERAGE, MM_AGGREGATED = "multi-modal-average", "multi-modal-aggregated"
STAGES = (TEXT, DESCRIPTIONS, AVERAGE, AGGREGATED, MM_AVERAGE, MM_AGGREGATED)
