"""Detector-free evaluation of classifiers: classify the ground-truth boxes of a labelled set."""
