import contextlib
import warnings

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU

from mmovod.clip import weights
from mmovod.clip.factory import is_torchscript_archive, load_clip, resolve_model_name
from mmovod.clip.text_encoding import tokenize
from mmovod.demo import world_models
from mmovod.demo.world_models import save_random_checkpoint, tiny_clip_config_path
from mmovod.io.errors import InputError


@pytest.mark.slow
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


def _tiny_name():
    return resolve_model_name(str(tiny_clip_config_path()), None)[0]


def _encode(model, text="a photo of a cat"):
    with torch.inference_mode():
        return model.encode_text(open_clip.get_tokenizer(_tiny_name())([text]))


@pytest.mark.slow
def test_openai_torchscript_archive_loads_with_quick_gelu(tmp_path):
    torch.manual_seed(0)
    source = open_clip.create_model(_tiny_name(), force_quick_gelu=True)
    archive = tmp_path / "ViT-tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(source).save(str(archive))
    assert is_torchscript_archive(archive)
    bundle = load_clip(str(tiny_clip_config_path()), str(archive), "cpu")
    assert isinstance(bundle.model.transformer.resblocks[0].mlp.gelu, QuickGELU)
    for key, value in source.state_dict().items():
        assert torch.equal(bundle.model.state_dict()[key], value), key
    assert torch.equal(_encode(bundle.model), _encode(source.eval()))


@pytest.mark.slow
def test_state_dict_with_module_prefix_and_bare_state_dict_load(tmp_path):
    torch.manual_seed(1)
    source = open_clip.create_model(_tiny_name()).eval()
    prefixed, bare = tmp_path / "ddp.pt", tmp_path / "bare.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, prefixed)
    torch.save(source.state_dict(), bare)
    assert not is_torchscript_archive(bare)
    for ckpt in (prefixed, bare):
        bundle = load_clip(str(tiny_clip_config_path()), str(ckpt), "cpu")
        assert isinstance(bundle.model.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)
        assert torch.equal(_encode(bundle.model), _encode(source))


@pytest.mark.slow
def test_mismatched_or_unreadable_checkpoint_is_one_line_input_error(tmp_path, tiny_clip):
    ckpt = tiny_clip.checkpoint
    with pytest.raises(InputError, match=r"not a checkpoint of RN50") as err:
        load_clip("RN50", str(ckpt), "cpu")
    assert "\n" not in str(err.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(InputError, match="not a readable CLIP checkpoint") as err:
        load_clip(str(tiny_clip_config_path()), str(garbage), "cpu")
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_text_tower_only_frees_the_image_tower(tiny_clip):
    ckpt = tiny_clip.checkpoint
    full = load_clip(str(tiny_clip_config_path()), str(ckpt), "cpu")
    text = load_clip(str(tiny_clip_config_path()), str(ckpt), "cpu", tower="text")
    assert text.model.visual is None and text.image_size == full.image_size and text.embed_dim == 512
    assert torch.equal(_encode(text.model), _encode(full.model))
    image = load_clip(str(tiny_clip_config_path()), str(ckpt), "cpu", tower="image")
    assert image.model.transformer is None and image.model.visual is not None
    assert full.tokenizer is not None and text.tokenizer is not None and image.tokenizer is None  # not built
    with pytest.raises(ValueError, match="image tower only"):
        tokenize(image, ["a photo of a cat"])


def test_weights_that_cannot_be_downloaded_say_where_to_get_them(monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Failed to download file (open_clip_pytorch_model.bin)\nsecond line")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", offline)
    monkeypatch.setattr(weights, "hub_unreachable", lambda url: False)  # online, but the download fails
    monkeypatch.setattr(weights, "hub_offline", lambda: False)
    with pytest.raises(InputError) as err:
        load_clip("ViT-B/32", None, "cpu")
    message = str(err.value)
    assert "\n" not in message
    assert "openai weights of ViT-B-32" in message and "--pretrained" in message
    assert "https://openaipublic.azureedge.net/clip/models/" in message


def test_tags_trained_with_quick_gelu_get_it(monkeypatch):
    """open_clip only warns when the openai tag meets a GELU config; the factory must force QuickGELU."""
    calls = []

    def record(name, **kwargs):
        calls.append((name, kwargs))
        raise RuntimeError("offline")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", record)
    monkeypatch.setattr(weights, "hub_unreachable", lambda url: False)
    monkeypatch.setattr(weights, "hub_offline", lambda: False)
    for model, tag in [("ViT-B/32", None), ("ViT-B-32", "openai"), ("ViT-B-32", "laion2b_s34b_b79k")]:
        with pytest.raises(InputError):
            load_clip(model, tag, "cpu")
    assert [(name, kw["pretrained"], kw["force_quick_gelu"]) for name, kw in calls] == [
        ("ViT-B-32", "openai", True), ("ViT-B-32", "openai", True), ("ViT-B-32", "laion2b_s34b_b79k", False)]


def test_a_random_demo_checkpoint_is_made_without_opening_clips_random_init_warning(tmp_path, caplog, monkeypatch):
    """make_demo_data's tiny CLIP is random on purpose: open_clip's 'No pretrained weights loaded' would only
    alarm the user; the check sees it once the filter is taken away."""

    def warned():
        return [r for r in caplog.records if "No pretrained weights loaded" in r.getMessage()]
    with caplog.at_level("WARNING"):
        save_random_checkpoint(tiny_clip_config_path(), tmp_path / "a.pt")
        assert warned() == []
        monkeypatch.setattr(world_models, "quiet_open_clip", lambda **kw: contextlib.nullcontext())
        save_random_checkpoint(tiny_clip_config_path(), tmp_path / "b.pt")
        assert warned()
