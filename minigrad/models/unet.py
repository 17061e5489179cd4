"""U-Net (Ronneberger et al., 2015) for semantic segmentation: a class score per pixel.

An encoder halves the size and doubles the channels `depth` times (two 3x3 conv + BN + relu,
then a 2x2 max pool); a decoder undoes it (a 2x2 transposed convolution doubles the size),
and at each size joins, channel-wise, the encoder's map of that size (the skip connection):
the decoder gets back the fine detail the pooling threw away. The convolutions pad, unlike
the original's, so the output has the input's size (an odd size is matched by padding the
upsampled map); a final 1x1 convolution gives num_classes scores per pixel.
"""

from __future__ import annotations

from minigrad import nn
from minigrad.nn import functional as F
from minigrad.ops.shape import cat
from minigrad.tensor import Tensor


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 21, width: int = 64,
                 depth: int = 4):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"UNet: depth and width must be >= 1, got {depth}, {width}")
        self.depth = depth
        channels = [width * 2**k for k in range(depth + 1)]
        self.inc = DoubleConv(in_channels, channels[0])
        self.down = nn.ModuleList(DoubleConv(channels[k], channels[k + 1]) for k in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(channels[k + 1], channels[k], 2, stride=2)
                                for k in reversed(range(depth)))
        self.decode = nn.ModuleList(DoubleConv(2 * channels[k], channels[k])
                                    for k in reversed(range(depth)))
        self.outc = nn.Conv2d(channels[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"UNet: expected images (N, C, H, W), got shape {x.shape}")
        if min(x.shape[2:]) < 2**self.depth:
            raise ValueError(f"UNet: images of size {x.shape[2:]} are too small for depth "
                             f"{self.depth} (at least {2**self.depth} pixels a side)")
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(self.pool(skips[-1])))
        y = skips.pop()
        for up, decode in zip(self.up, self.decode):
            skip = skips.pop()
            y = up(y)
            dh, dw = skip.shape[2] - y.shape[2], skip.shape[3] - y.shape[3]
            if dh or dw:  # an odd size lost a row or column to the pooling
                y = F.pad(y, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
            y = decode(cat([skip, y], 1))
        return self.outc(y)


def unet(num_classes: int = 21, in_channels: int = 3, width: int = 64, depth: int = 4) -> UNet:
    return UNet(in_channels, num_classes, width, depth)
