"""Visual aggregator: the model (and `aggregate` with it), episodic training on a feature cache, and its held-out retrieval evaluation."""
