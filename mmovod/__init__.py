"""mmovod: data preparation and multi-modal CLIP classifiers for open-vocabulary detection (MM-OVOD)."""

__version__ = "0.1.0"
