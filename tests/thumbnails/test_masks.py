"""thumbnails.processors.masks: the interface contract, and that a drawn mask raises a real face's score.

The two faces below are LFW faces from scikit-image's wheel
(skimage/data/lfw_subset.npy, indices 2 and 8: the first two of the 30
that bench/masks_train.py keeps out of training), 25x25 grey uint8.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from bench import masks_train
from thumbnails.processors import masks

FACES = {
    2: (
        "qZeFd2pjbWlrbHFzc3N+fnxVRiQTERIfL5CIZk1FbnR3goGPlpCPjYeBUT8nFgoMHTJZV1dUVnGDkJSUpK2onZePhFMrLBsREhk6SUxfW2+ImqClr7vD"
        "uaugm4pdLSYpGx0SMzVRi4uVqbGxsLq4vLm3sauahFAqLh8nJTgrSKSorq2uq7Cukn93gYqVkJCFQy4sG2OGJEK2tKGKkaSoiV1KQD9PYHWUm3QnL0x5"
        "ejI1p2hHQFSgvKVZQlQzYGyYraiZSixwipw8NYNZSSIrh8a0j3aNoKrDwLaupn9Xc3mlVjWKYIF1cq3KvKugo7K/vLiwp5uLg7CDoJhRjaupnJy6x6+r"
        "rbbHwb6xpZuIfoCqqa2ykJvFvLW5vcmxqaW6uLOspJaNeYGCoKamsbDBw8TBts3MsqiblqitpJaPiYSLhaOkl7KvuMS5uJy9rpeHfaeipaWVjIuOkIiJ"
        "TYWzr7eopp2PjnloY3mmqaWhmYeOl46ANUqNsa6vvJWSp555ZnGTnZeRmJiQlpaLgztila+srbKYrbOgkoenqpuNYnaTkJeSh3hRdJ6xrq+sqLaRnYGA"
        "cWNTXYR6kouSh3twe52er62vrbetdllifZmgs5GUoZd/hXdjcXp4oKurra2yq5GYopSEenR+np+LcoFiT3t9CRqsqaqoqqWetZF4eo+epqydhntpTV2B"
        "fBcGqaaopKmho7u3rrG8uLOki3plSExwfHAqBKavxdW1qJmwxsK3rKeTg2tMQ0Zcdnl4Qwnv9fXl0dTDvo6Yi4V5aVQ6PD1NaG94d2A+8/Xv32PA7s2C"
        "WlRMPTAwMjVJYGdygbe/jg=="
    ),
    8: (
        "Q0OGgarBwLu9vr+3sba80c/Lw62lii4XF0dOl43BwsS5vsG8uq+vsMGuo6erg4JTDxJDWn+subO1vLSzs7KtpKOcfYuOm3J0ZBgSQ11/rbGpqba4rZ+Y"
        "p6OjkIWRjotgYHMVFUZbdqqwqayusLO2rrCdmY+Mj4d2S0BnLiRIYIChtLm8tLi4o7ChhYiUpJmJckZPYXwjSVqJpbegh2CCm6usjnlSP2KCi3heWGZG"
        "KUN0i6aTVkFYZIadlnBDVnxlVW9xa1dkZiVKpI2gfI+ekotps6k5WX+Bc1dJZHRmXDonR1Kclm9SKlxchrWUVWRUYFpCS3V0aTVHIEdOlqKTmqGjm66v"
        "j3OFl5GJdIh/bU83TiRHWI2iuayqoK6rtJJzgJKWgITAe115ZUsbRlOpnbu5v7uspLKeX2icnKqZf3BgdXcyDkRErJilqbmwlqe2jWV8hKKejGdxanly"
        "Ew45KHCbnKeogok3YEYYK1+Fi397c2Z0bRYPKhlJkKOfmnGym3U1VnF0cnRxaWpWZ4A7EBUQTIydmHmRoKaZmoB3aWdlclZZWF6nix8TDxF+ipRyal5v"
        "dHJtX0E4aXJDUEhNzrA8FxENaYeUnJ2ki357Z0xob4hnRkpBUcWuWiASETZ0hpSalXiXoYpqZGR3Sz4zPXLBuYEsGRcXcXmAmqeqmoCEcoFnZDssJjGm"
        "u7ibSUA6O2Vzf4iVhoBvcGVmWEU9KSkvmLmnklVYYFljgnhsanhXTUlfSzU3NSs3S199eWRzdnFcPpx6YFhfTD80QTkwOTInQldDVXZ4ZGVfS1nliXVq"
        "aFVEPTcwNzgqLootOU5hcQ=="
    ),
}


def face(index: int) -> np.ndarray:
    gray = np.frombuffer(base64.b64decode(FACES[index]), dtype=np.uint8).reshape(25, 25)
    return masks_train.upscale(gray)  # 100x100 RGB, as the training and the benchmark feed faces


def test_one_flag_and_score_per_crop_in_order():
    rng = np.random.default_rng(0)
    crops = [
        face(2),
        rng.integers(0, 256, (24, 24, 3), dtype=np.uint8),  # the smallest box faces.detect returns
        rng.integers(0, 256, (300, 240, 3), dtype=np.uint8),  # not square
        face(8)[:, :, :1],  # one channel
    ]
    result = masks.classify(crops)
    assert result.reason is None
    assert result.model == masks.MODEL_NAME and result.version
    assert result.masked is not None and result.scores is not None
    assert len(result.masked) == len(result.scores) == len(crops)
    assert all(isinstance(m, bool) for m in result.masked)
    assert all(0.0 <= s <= 1.0 for s in result.scores)
    # in order: each crop alone gets the same answer
    for crop, flag in zip(crops, result.masked, strict=True):
        assert masks.classify([crop]).masked == [flag]


def test_empty_list_is_empty_answer():
    result = masks.classify([])
    assert result.masked == [] and result.scores == [] and result.reason is None


def test_a_crop_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError):
        masks.classify([np.zeros((10, 10, 4), dtype=np.uint8)])


@pytest.mark.parametrize("index", sorted(FACES))
def test_a_drawn_mask_raises_a_held_out_faces_score(index):
    original = face(index)
    masked = masks_train.draw_mask(original, np.random.default_rng(index))
    textured = masks_train.draw_mask(original, np.random.default_rng(index), texture=_blue_texture())
    result = masks.classify([original, masked, textured])
    assert result.scores is not None and result.masked is not None
    assert result.scores[1] > result.scores[0] and result.scores[2] > result.scores[0]
    assert result.masked == [False, True, True]


def _blue_texture() -> np.ndarray:
    """A plain pleated blue surface, standing in for a photographed mask (the benchmark uses real ones)."""
    tex = np.empty((60, 100, 3), dtype=np.uint8)
    tex[:] = (120, 180, 225)
    tex[15:18] = tex[30:33] = tex[45:48] = (100, 155, 200)
    return tex


def test_without_a_model_masked_is_none_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(masks, "MODEL_PATH", tmp_path / "absent.npz")
    monkeypatch.setattr(masks, "_model", None)
    monkeypatch.setattr(masks, "_error", None)
    result = masks.classify([face(2)])
    assert result.masked is None and result.scores is None
    assert result.model == "none"
    assert result.reason and result.reason.startswith("No mask classifier is installed")


def test_the_committed_model_is_small():
    assert masks.MODEL_PATH.stat().st_size < 2_000_000
