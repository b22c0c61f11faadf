"""YOLO-World (the official repository, AILab-CVC/YOLO-World): the `embedding_path` file of its
`SimpleYOLOWorldDetector` and the class texts of its test dataset.

`SimpleYOLOWorldDetector` (`yolo_world/models/detectors/yolo_world.py`) reads
`torch.from_numpy(np.load(embedding_path)).float()` as its `(num_prompts, prompt_dim)` prompt
embeddings and compares them with image features in the space of its CLIP text encoder (ViT-B/32,
512-d, for the released models; its `generate_text_prompts.py` makes such a file from
L2-normalised CLIP text embeddings, and `reparameterize_yoloworld.py --text-embed` folds one into a
checkpoint without casting it, so it must be float32). It reads no class names: its label i is row
i, so the test dataset's classes (`metainfo=dict(classes=...)`) must be the rows' names in row order.
`class_text_path` (a JSON list with one list of texts per class, `data/texts/coco_class_texts.json`)
is what `generate_text_prompts.py --text` and a `MultiModalDataset` read.

Writes `X.npy` (float32 `(C, D)`, rows L2-normalised), its sidecar, `X.classes.txt` (one name a line,
in row order, which the printed config lines read) and `X.class_texts.json` (`[["name"], ...]`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmovod.classifiers.sidecar import ClassifierSidecar
from mmovod.handoff.output import Handoff, beside, class_list_bytes, exported_sidecar, prompt_embeddings
from mmovod.io.arrays import npy_bytes
from mmovod.io.atomic import write_files_together
from mmovod.io.json_files import dumps_json


def yolo_world_config_lines(path: Path, names: Path, num_classes: int, embed_dim: int) -> list[str]:
    """The config entries (Python, mmengine style) that load `path` into YOLO-World, with the classes of `names`.

    The head's and assigner's class counts are set too, which training with the rows needs."""
    return [
        f"classes = tuple(open({str(names)!r}, encoding='utf-8').read().splitlines())",
        f"model = dict(type='SimpleYOLOWorldDetector', embedding_path={str(path)!r}, num_prompts={num_classes}, "
        f"num_train_classes={num_classes}, num_test_classes={num_classes}, prompt_dim={embed_dim}, "
        f"bbox_head=dict(head_module=dict(num_classes={num_classes})), "
        f"train_cfg=dict(assigner=dict(num_classes={num_classes})), ...)",
        "test_dataloader = dict(dataset=dict(metainfo=dict(classes=classes), ...))",
    ]


def write_yolo_world(array: np.ndarray, sidecar: ClassifierSidecar, out: Path, source: str,
                     command: str | None = None) -> Handoff:
    """Write the YOLO-World hand-off of checked CLIP-space rows `array` `(C, D)` to `out` (see the module docstring)."""
    rows = prompt_embeddings(array)
    names = beside(out, ".classes.txt")
    files = {out: npy_bytes(rows),
             **exported_sidecar(rows, sidecar, out, normalized=True, source=source, command=command,
                                form="prompt embeddings (L2-normalised)"),
             names: class_list_bytes(sidecar.class_names),
             beside(out, ".class_texts.json"): dumps_json([[name] for name in sidecar.class_names])}
    write_files_together(files)
    return Handoff("yolo-world", list(files), yolo_world_config_lines(out, names, *rows.shape))
