"""Classifiers: class-name and description text classifiers, image-exemplar classifiers, fusion."""
