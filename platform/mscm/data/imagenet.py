"""ImageNet normalisation shared by training augmentations and test-time feature extraction."""

from __future__ import annotations

import torch

# torchvision's ImageNet statistics, as used by the authors (docs/model.md, "The network").
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_uint8(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 images, N x H x W x 3 (as stored) or N x 3 x H x W, -> normalised float N x 3 x H x W."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"expected a batch N x H x W x 3 or N x 3 x H x W, got shape {tuple(images.shape)}")
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    x = images.to(dtype).div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)
