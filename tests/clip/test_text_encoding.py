import json

import numpy as np
import open_clip
import pytest
import torch

from mmovod.clip.factory import ClipBundle, resolve_model_name
from mmovod.demo.world_models import tiny_clip_config_path
from mmovod.clip.text_encoding import (causal_text_tower, class_means, encode_class_means, encode_sentences,
                                 max_relative_difference, tokenize)

SENTENCES = [
    "a cat",
    "An aerosol can look like a small silver can with a black nozzle on top.",
    "dog",
    " ".join(["a very long sentence about a tiny teapot"] * 12),  # far over 77 tokens: truncated
    "a photo of a bicycle in the scene",
    "",
    "Broccoli is a green vegetable that looks like a miniature tree.",
]


def _bundle(model, name):
    return ClipBundle(model=model.eval(), tokenizer=open_clip.get_tokenizer(name), preprocess=None,
                      device=torch.device("cpu"), model_name=name, pretrained=None, embed_dim=512, image_size=64)


def _tiny(seed=0, **kwargs):
    name = resolve_model_name(str(tiny_clip_config_path()), None)[0]
    torch.manual_seed(seed)
    return _bundle(open_clip.create_model(name, **kwargs), name)


def _reference(bundle, sentences):
    """Full 77-token encoding, one sentence at a time, straight through open_clip."""
    with torch.inference_mode():
        return np.concatenate([bundle.model.encode_text(open_clip.tokenize([s])).numpy() for s in sentences])


@pytest.mark.slow
@pytest.mark.parametrize("custom_text", [False, True], ids=["CLIP", "CustomTextCLIP"])
def test_bucketed_prefix_encoding_equals_full_context_encode_text(custom_text):
    bundle = _tiny(seed=1, force_custom_text=custom_text)
    assert causal_text_tower(bundle.model) is not None
    got = encode_sentences(bundle, SENTENCES, batch_size=3)
    want = _reference(bundle, SENTENCES)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), 512)
    assert max_relative_difference(got, want) < 1e-5
    # rows are distinct sentences in input order, not the sorted order
    assert np.argmin(np.abs(got[:, None] - want[None]).max(-1), axis=1).tolist() == list(range(len(SENTENCES)))


@pytest.mark.slow
def test_long_sentences_are_truncated_like_clip_tokenize_truncate_true():
    bundle = _tiny()
    tokenizer = open_clip.tokenizer.SimpleTokenizer()
    long = SENTENCES[3]
    bpe = tokenizer.encode(long)
    assert len(bpe) > 75
    expected = [tokenizer.sot_token_id, *bpe[:75], tokenizer.eot_token_id]
    assert tokenize(bundle, [long])[0].tolist() == expected


@pytest.mark.slow
def test_non_causal_pooling_falls_back_to_full_context(tmp_path):
    config = json.loads(tiny_clip_config_path().read_text())
    config["text_cfg"]["pool_type"] = "last"
    path = tmp_path / "tiny_last_pool.json"
    path.write_text(json.dumps(config))
    name = resolve_model_name(str(path), None)[0]
    torch.manual_seed(2)
    bundle = _bundle(open_clip.create_model(name), name)
    assert causal_text_tower(bundle.model) is None
    got = encode_sentences(bundle, SENTENCES[:3], batch_size=2)
    assert max_relative_difference(got, _reference(bundle, SENTENCES[:3])) < 1e-5


def test_class_means_hand_worked():
    emb = np.array([[1, 2], [3, 4], [10, 0], [0, 0], [2, 2], [4, 4]], dtype=np.float32)
    np.testing.assert_array_equal(class_means(emb, [2, 1, 3]), [[2, 3], [10, 0], [2, 2]])
    with pytest.raises(ValueError):
        class_means(emb, [3, 0, 3])


@pytest.mark.slow
def test_encode_class_means_averages_unnormalised_embeddings():
    bundle = _tiny(seed=3)
    groups = [SENTENCES[:2], SENTENCES[2:3], SENTENCES[3:]]
    got = encode_class_means(bundle, groups, batch_size=2)
    want = np.stack([_reference(bundle, g).mean(axis=0) for g in groups])
    assert got.shape == (3, 512) and got.dtype == np.float32
    assert max_relative_difference(got, want) < 1e-5
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0)


@pytest.mark.slow
def test_empty_input_and_progress_counts():
    bundle = _tiny()
    assert encode_sentences(bundle, [], batch_size=4).shape == (0, 512)
    seen = []
    encode_sentences(bundle, SENTENCES, batch_size=4, progress=seen.append)
    assert seen == [4, 3]
