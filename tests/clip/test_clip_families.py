"""Other CLIP families open_clip lists load through the one factory, or are refused in one line naming what is missing.

Each case is a small random config written here (no download): the SigLIP architecture (no causal mask,
last-token pooling, a logit bias, the projection inside the text tower) under a name open_clip gives its
own tokenizer, CoCa (attentional pooling, a captioning decoder) and EVA (a timm image tower) load with
both towers and embed text and images at the config's width; SigLIP with its tokenizer (a Hugging Face
one, which open_clip gives to a name with 'siglip' or a config naming one) is refused when
`transformers` is missing.
"""
import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmovod.clip import factory
from mmovod.clip.factory import clip_embed_dim, load_clip
from mmovod.clip.text_encoding import encode_sentences
from mmovod.io.errors import InputError

TINY_VISION = {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16}
TINY_TEXT = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
CONFIGS = {
    "tiny-sigmoid": {"embed_dim": 48, "init_logit_bias": -10, "custom_text": True, "vision_cfg": TINY_VISION,
                    "text_cfg": {**TINY_TEXT, "no_causal_mask": True, "proj_bias": True, "pool_type": "last"}},
    "tiny-coca": {"embed_dim": 40, "custom_text": True,
                  "vision_cfg": {**TINY_VISION, "attentional_pool": True, "attn_pooler_heads": 2, "output_tokens": True},
                  "text_cfg": {**TINY_TEXT, "embed_cls": True, "output_tokens": True},
                  "multimodal_cfg": {**TINY_TEXT, "attn_pooler_heads": 2}},
    "tiny-eva": {"embed_dim": 56, "custom_text": True, "text_cfg": TINY_TEXT,
                 "vision_cfg": {"image_size": 224, "timm_model_name": "eva02_tiny_patch14_224",
                                "timm_model_pretrained": False, "timm_pool": "token", "timm_proj": "linear"}},
    "tiny-ViT-SigLIP": {"embed_dim": 48, "custom_text": True, "vision_cfg": TINY_VISION,
                        "text_cfg": {**TINY_TEXT, "no_causal_mask": True, "pool_type": "last"}},
    "tiny-hf-tokenizer": {"embed_dim": 48, "custom_text": True, "vision_cfg": TINY_VISION,
                          "text_cfg": {**TINY_TEXT, "vocab_size": 32000, "hf_tokenizer_name": "timm/ViT-B-16-SigLIP",
                                       "no_causal_mask": True, "pool_type": "last"}},
}


def config_file(tmp_path, name):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(CONFIGS[name]))
    return str(path)


def embed_both_towers(bundle):
    image = bundle.preprocess(Image.new("RGB", (40, 30), (200, 40, 10)))[None]
    with torch.inference_mode():
        images = bundle.model.encode_image(image).numpy()
    texts = encode_sentences(bundle, ["a cat", "a photo of a dog"])
    return images, texts


@pytest.mark.parametrize("name", ["tiny-sigmoid", "tiny-coca",
                                  pytest.param("tiny-eva", marks=pytest.mark.slow)])
def test_a_family_loads_with_both_towers_and_embeds_at_its_width(tmp_path, name):
    path = config_file(tmp_path, name)
    width = CONFIGS[name]["embed_dim"]
    assert clip_embed_dim(path) == width
    bundle = load_clip(path, "none", "cpu")
    assert bundle.embed_dim == width and bundle.tokenizer is not None
    images, texts = embed_both_towers(bundle)
    assert images.shape == (1, width) and texts.shape == (2, width)
    assert np.isfinite(texts).all() and not np.allclose(texts[0], texts[1])


@pytest.mark.parametrize("name, tokenizer", [("tiny-ViT-SigLIP", "SigLIP's"),
                                             ("tiny-hf-tokenizer", "timm/ViT-B-16-SigLIP")])
def test_a_family_whose_tokenizer_needs_a_missing_package_is_refused_in_one_line(tmp_path, monkeypatch, name, tokenizer):
    path = config_file(tmp_path, name)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda mod, *a: None if mod == "transformers" else real(mod, *a))
    with pytest.raises(InputError) as refused:
        load_clip(path, "none", "cpu")
    assert str(refused.value) == (
        f"cannot load {path}: its tokenizer ({tokenizer}; its image tower alone loads without it) needs the "
        "transformers package, which is not installed (pip install transformers)")
    assert load_clip(path, "none", "cpu", tower="image").embed_dim == 48  # the image tower needs no tokenizer


def test_the_width_came_from_the_text_projection_before(tmp_path, monkeypatch):
    """The bug this replaces: reading the width from `model.text_projection`, which a SigLIP-style model keeps
    inside its text tower, crashed with AttributeError; the factory must not touch it."""
    path = config_file(tmp_path, "tiny-sigmoid")
    bundle = load_clip(path, "none", "cpu")
    with pytest.raises(AttributeError):
        bundle.model.text_projection  # noqa: B018 - what the old code read
    monkeypatch.setattr(factory, "missing_packages", lambda name, config, tower: ["planted"])
    with pytest.raises(InputError, match="planted"):  # the refusal is the factory's, before any model is made
        load_clip(path, "none", "cpu")
