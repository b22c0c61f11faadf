"""Released assets: the authors' aggregator checkpoint and metadata files, and CLIP weights, fetched and checked."""
