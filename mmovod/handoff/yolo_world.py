"""YOLO-World (the official repository, AILab-CVC/YOLO-World): the `embedding_path` file of its
`SimpleYOLOWorldDetector` and the class texts of its test dataset.

`SimpleYOLOWorldDetector` (`yolo_world/models/detectors/yolo_world.py`) reads
`torch.from_numpy(np.load(embedding_path)).float()` as its `(num_prompts, prompt_dim)` prompt
embeddings and compares them with image features in the space of its CLIP text encoder (ViT-B/32,
512-d, for the released models; its `generate_text_prompts.py` makes such a file from
L2-normalised CLIP text embeddings). The dataset's `class_text_path` is a JSON list with one list of
texts per class, in row order (`data/texts/coco_class_texts.json`).

Writes `X.npy` (float32 `(C, D)`, rows L2-normalised), its sidecar and `X.class_texts.json`
(`[["name"], ...]`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmovod.classifiers.sidecar import ClassifierSidecar
from mmovod.handoff.output import Handoff, beside, exported_sidecar, prompt_embeddings
from mmovod.io.arrays import npy_bytes
from mmovod.io.atomic import write_files_together
from mmovod.io.json_files import dumps_json


def yolo_world_config_lines(path: Path, texts: Path, num_classes: int, embed_dim: int) -> list[str]:
    """The config entries (Python, mmengine style) that load `path` and `texts` into YOLO-World."""
    return [
        f"model = dict(type='SimpleYOLOWorldDetector', embedding_path={str(path)!r}, num_prompts={num_classes}, "
        f"num_train_classes={num_classes}, num_test_classes={num_classes}, prompt_dim={embed_dim}, ...)",
        f"test_dataloader = dict(dataset=dict(type='MultiModalDataset', class_text_path={str(texts)!r}, ...))",
    ]


def write_yolo_world(array: np.ndarray, sidecar: ClassifierSidecar, out: Path, source: str,
                     command: str | None = None) -> Handoff:
    """Write the YOLO-World hand-off of checked CLIP-space rows `array` `(C, D)` to `out` (see the module docstring)."""
    rows = prompt_embeddings(array)
    texts = beside(out, ".class_texts.json")
    files = {out: npy_bytes(rows),
             **exported_sidecar(rows, sidecar, out, normalized=True, source=source, command=command,
                                form="prompt embeddings (L2-normalised)"),
             texts: dumps_json([[name] for name in sidecar.class_names])}
    write_files_together(files)
    return Handoff("yolo-world", list(files), yolo_world_config_lines(out, texts, *rows.shape))
