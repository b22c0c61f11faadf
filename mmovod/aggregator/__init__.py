"""Visual aggregator: the model, the CLIP feature cache it trains on, training and evaluation."""
