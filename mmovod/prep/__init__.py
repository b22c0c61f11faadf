"""Data preparation steps of the datasets guide: LVIS annotations, the IN-L list, exemplar collation and sampling, the demo dataset."""
