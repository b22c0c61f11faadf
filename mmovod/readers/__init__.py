"""Readers of the source datasets: LVIS JSON, the ImageNet-21K tree, Visual Genome, WordNet, exemplar lists and image roots."""
