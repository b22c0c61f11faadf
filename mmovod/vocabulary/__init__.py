"""Your own vocabulary: class lists and exemplar photos in, text / vision / multi-modal classifiers out."""
