import torch
import pytest

from mmovod.clip_model import load_clip, save_random_checkpoint, tiny_clip_config_path, resolve_model_name
from mmovod.errors import InputError


def test_random_checkpoint_round_trips_through_the_user_path(tmp_path):
    ckpt = tmp_path / "tiny.pt"
    save_random_checkpoint(tiny_clip_config_path(), ckpt, seed=3)
    a = load_clip(str(tiny_clip_config_path()), str(ckpt), "cpu")
    b = load_clip(str(tiny_clip_config_path()), str(ckpt), "cpu")
    assert a.embed_dim == 512 and a.image_size == 64
    tokens = a.tokenizer(["a photo of a cat"])
    with torch.inference_mode():
        ea, eb = a.model.encode_text(tokens), b.model.encode_text(tokens)
    assert ea.shape == (1, 512)
    assert torch.equal(ea, eb)
    saved = torch.load(ckpt)["state_dict"]
    for key, value in a.model.state_dict().items():
        assert torch.equal(saved[key], value), key


def test_openai_spelling_maps_to_open_clip_name_and_openai_weights():
    assert resolve_model_name("ViT-B/32", None) == ("ViT-B-32", "openai")
    assert resolve_model_name("ViT-B/32", "none") == ("ViT-B-32", None)


def test_unknown_model_and_missing_checkpoint_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown --clip_model"):
        load_clip("ViT-Q/99", None, "cpu")
    with pytest.raises(InputError, match="not found"):
        load_clip(str(tiny_clip_config_path()), str(tmp_path / "missing.pt"), "cpu")
