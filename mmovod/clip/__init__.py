"""CLIP: the model factory, text encoding, exemplar crops, augmented views and batched image encoding."""
