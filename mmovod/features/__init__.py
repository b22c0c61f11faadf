"""CLIP feature caches: the shard format on disk, the builder that fills it, and multi-process (torchrun) set-up."""
