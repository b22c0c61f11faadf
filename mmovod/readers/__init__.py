"""Readers of the source datasets and user inputs: LVIS JSON, the ImageNet-21K tree, Visual Genome, WordNet, vocabularies, exemplar lists and their geometry, class sources and image roots."""
