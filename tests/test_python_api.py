"""The README's Python-API example runs as written (on the demo dataset, with the tiny demo CLIP in place of
ViT-B/32), and its arrays equal the tools' own steps computed independently."""
import os
from pathlib import Path

import numpy as np
import pytest

import mmovod
from mmovod.clip.crops import load_exemplar_crop
from tests.docs_text import README, readme_example

def test_every_public_name_resolves():
    for name in mmovod.__all__:
        assert getattr(mmovod, name) is not None, name
    with pytest.raises(AttributeError):
        mmovod.no_such_name  # noqa: B018


@pytest.mark.slow
def test_readme_example_runs_and_matches_a_direct_computation(tmp_path, monkeypatch, capsys, demo_dataset):
    demo = tmp_path / "datasets/demo"
    demo.parent.mkdir()
    demo.symlink_to(demo_dataset)
    code = readme_example()
    tiny = f'ClipSpec({str(demo / "clip/tiny_clip.json")!r}, {str(demo / "clip/tiny_clip.pt")!r}, "cpu")'
    assert 'ClipSpec("ViT-B/32")' in code
    code = code.replace('ClipSpec("ViT-B/32")', tiny)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)  # noqa: S102 - the README's own example
    assert capsys.readouterr().out.strip() == "(2, 512) (2, 512) (2, 512)"

    clip = scope["clip"]
    # text rows: the mean of the synonyms' "a <synonym>" embeddings, computed with the model directly
    import torch
    with torch.inference_mode():
        emb = clip.model.encode_text(clip.tokenizer(["a hard hat", "a safety helmet", "a traffic cone", "a pylon"]))
    want = torch.stack([emb[:2].mean(0), emb[2:].mean(0)]).numpy()
    np.testing.assert_allclose(scope["text"], want, rtol=1e-4, atol=1e-5)
    # multi-modal rows: l2(l2(text) + l2(vision))
    l2 = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(scope["multi_modal"], l2(l2(scope["text"]) + l2(scope["vision"].astype(np.float64))),
                               rtol=1e-5, atol=1e-6)
    # the vision row of a one-exemplar class without TTA is its plain crop's embedding
    plain = mmovod.exemplar_classifier(scope["exemplars"][:1], clip, mmovod.ViewSpec(num_views=3, tta=False,
                                       context=0.4, workers=0), roots={"lvis": demo / "coco"})
    crop = load_exemplar_crop(scope["exemplars"][0][0], {"lvis": demo / "coco"}, 0.4)
    with torch.inference_mode():
        direct = clip.model.encode_image(clip.preprocess(crop)[None]).numpy()
    np.testing.assert_allclose(plain, direct, rtol=1e-4, atol=1e-5)
    assert not any(Path(p).suffix == ".npy" for p in os.listdir(tmp_path)), "the in-memory API writes nothing"
