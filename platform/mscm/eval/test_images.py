"""The decoded test images of a dataset at a model's input size: the one way every evaluation
(training's, ``mscm evaluate``'s, promotion's) opens them."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.build import drop_skipped
from ..data.cache import ImageCache
from ..datasets.records import Modality, VIReIDDataset


@dataclass(frozen=True)
class TestImages:
    """``visible`` / ``infrared`` are aligned with ``dataset.test_visible`` / ``dataset.test_infrared``.
    ``dataset`` is the one they were opened from, less any image a ``skip_corrupt`` cache left out."""

    __test__ = False  # not a pytest test class

    dataset: VIReIDDataset
    visible: ImageCache
    infrared: ImageCache

    def __post_init__(self) -> None:
        for name, images, records in (
            ("visible", self.visible, self.dataset.test_visible),
            ("infrared", self.infrared, self.dataset.test_infrared),
        ):
            if len(images) != len(records):
                raise ValueError(f"{name}: {len(images)} images for {len(records)} test records")

    def of(self, modality: Modality) -> ImageCache:
        return self.visible if modality == Modality.VISIBLE else self.infrared

    @property
    def size(self) -> tuple[int, int]:
        return self.visible.height, self.visible.width


def open_test_images(
    dataset: VIReIDDataset,
    height: int,
    width: int,
    *,
    cache_dir: str | None = None,
    skip_corrupt: bool = False,
    progress: bool = False,
) -> TestImages:
    """Decode (or reuse from the image cache) every test image of ``dataset`` at ``height`` x ``width``.
    ``dataset`` itself is left as it is; the returned one drops what could not be read."""
    caches = [
        ImageCache(records, height, width, cache_dir, skip_corrupt=skip_corrupt, progress=progress)
        for records in (dataset.test_visible, dataset.test_infrared)
    ]
    return TestImages(drop_skipped(dataset, caches), caches[0], caches[1])
