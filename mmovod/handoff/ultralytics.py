"""Ultralytics YOLO-World (`ultralytics.YOLOWorld`): the text features and class names its `set_classes`
would compute, saved so that `torch.load(path, weights_only=True)` reads them.

`WorldModel.set_classes` (`ultralytics/nn/tasks.py`) stores `txt_feats`, float `(1, C, D)` from its
CLIP ViT-B/32 text encoder (512-d, each row L2-normalised), and sets the head's `nc` to C;
`YOLOWorld.set_classes` (`ultralytics/models/yolo/model.py`) then sets the model's `names`. Setting
those three from this file gives the model these classes without its CLIP.

Writes `X.pt` (`{"txt_feats": (1, C, D) float32 tensor, "names": [str, ...]}`) and its sidecar
`X.pt.json` (the `(C, D)` rows it holds).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mmovod.classifiers.sidecar import ClassifierSidecar
from mmovod.handoff.output import Handoff, exported_sidecar, prompt_embeddings
from mmovod.io.atomic import write_files_together


def ultralytics_lines(path: Path) -> list[str]:
    """The Python lines that put the classes of `path` into an Ultralytics YOLO-World model."""
    return [
        "import torch",
        "from ultralytics import YOLOWorld",
        "model = YOLOWorld('yolov8s-worldv2.pt')",
        f"saved = torch.load({str(path)!r}, weights_only=True)",
        "model.model.txt_feats = saved['txt_feats']",
        "model.model.model[-1].nc = len(saved['names'])",
        "model.model.names = saved['names']",
        "model.predictor = None",
        "results = model.predict('image.jpg')",
    ]


def write_ultralytics(array: np.ndarray, sidecar: ClassifierSidecar, out: Path, source: str,
                      command: str | None = None) -> Handoff:
    """Write the Ultralytics hand-off of checked CLIP-space rows `array` `(C, D)` to `out` (see the module docstring)."""
    import torch

    rows = prompt_embeddings(array)
    buffer = io.BytesIO()
    torch.save({"txt_feats": torch.from_numpy(rows)[None].clone(), "names": list(sidecar.class_names)}, buffer)
    files = {out: buffer.getvalue(),
             **exported_sidecar(rows, sidecar, out, normalized=True, source=source, command=command,
                                form="Ultralytics YOLO-World txt_feats (1, C, D) float32 L2-normalised, with names")}
    write_files_together(files)
    return Handoff("ultralytics", list(files), ultralytics_lines(out))
