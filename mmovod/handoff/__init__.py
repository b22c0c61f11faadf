"""Hand a classifier to a detector: one module per detector's format (`detic`, `yolo_world`,
`ultralytics`), the table of formats and `export_classifier` in `formats`, and what is read from the
classifier (its sidecar, or the class names and CLIP given for a file without one) in `source`."""
