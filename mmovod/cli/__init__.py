"""Command-line layer: the run wrapper that turns expected failures into one-line errors, and shared flag groups."""
