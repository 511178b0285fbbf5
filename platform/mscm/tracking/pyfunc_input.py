"""The rows a served mscm model takes, turned into one batch at the model's input size.

A row has two columns:

- ``image``: encoded JPEG/PNG (or any format PIL reads) as ``bytes`` or as a base64 string (what a
  plain HTTP client sends in JSON), or an RGB ``uint8`` array of shape (h, w, 3) (a nested list in
  JSON). Any size: it is resized to the model's input exactly as ``mscm retrieve`` and the evaluation
  resize a file (:func:`mscm.data.cache.load_image`, LANCZOS).
- ``modality``: ``"visible"`` / ``"infrared"`` (or ``0`` / ``1``).

Inputs come as a pandas DataFrame (what MLflow hands over after its schema check, and what
``dataframe_split`` / ``dataframe_records`` JSON becomes), or a dict of columns (a (B, h, w, 3) array for
``image`` is a batch of rows). A bad row is refused with one message that names the row and the problem.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np

from ..data.cache import load_image, resize_array
from ..datasets.errors import CorruptImageError
from ..datasets.records import Modality

COLUMNS = ("image", "modality")


class BadRows(ValueError):
    """Input the model cannot embed; the message names the row."""


def _dataframe_columns(frame: Any) -> dict[str, list[Any]]:
    columns = {c: list(frame[c]) for c in frame.columns}
    modality = columns.get("modality", [])
    if len(frame) == 1 and isinstance(modality[0], (list, tuple, np.ndarray)):
        # MLflow turns a dict of lists of strings ({"image": [b64, ...], "modality": [...]}) into ONE row
        # whose cells are the lists; a modality is a scalar, so a list there is a column: unfold it.
        return {c: list(v[0]) if isinstance(v[0], (list, tuple, np.ndarray)) else v for c, v in columns.items()}
    return columns


def _columns(model_input: Any) -> tuple[list[Any], list[Any]]:
    try:
        import pandas as pd

        if isinstance(model_input, pd.DataFrame):
            model_input = _dataframe_columns(model_input)
    except ImportError:  # pandas comes with MLflow; without it only dicts arrive
        pass
    if not isinstance(model_input, dict) or not set(COLUMNS) <= set(model_input):
        found = sorted(model_input) if isinstance(model_input, dict) else type(model_input).__name__
        raise BadRows(f'the input needs the columns "image" and "modality" (found {found})')
    images, modality = model_input["image"], model_input["modality"]
    images = list(images) if isinstance(images, (list, tuple, np.ndarray)) else [images]
    modality = list(np.asarray(modality).reshape(-1)) if not isinstance(modality, (list, tuple)) else list(modality)
    if not images:
        raise BadRows("the batch is empty")
    if len(modality) != len(images):
        raise BadRows(f"{len(images)} images but {len(modality)} modalities")
    return images, modality


def _modality(value: Any, row: int) -> int:
    try:
        if isinstance(value, (bool, np.bool_)):
            raise ValueError
        if isinstance(value, (int, np.integer)):
            return int(Modality(int(value)))
        if isinstance(value, str):
            return int(Modality.parse(value.strip()))
    except ValueError:
        pass
    raise BadRows(f"row {row}: modality {value!r} is not 'visible' (0) or 'infrared' (1)")


def _decoded(data: bytes, row: int, height: int, width: int) -> np.ndarray:
    try:
        return load_image(io.BytesIO(data), height, width)
    except CorruptImageError as e:
        raise BadRows(f"row {row}: the image bytes are not an image PIL can read ({e.reason})") from None


def _pixels(value: Any, row: int, height: int, width: int) -> np.ndarray:
    try:
        pixels = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise BadRows(f"row {row}: the image array is ragged, expected (h, w, 3)") from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape:
        raise BadRows(f"row {row}: the image array has shape {pixels.shape}, expected (h, w, 3) RGB")
    if pixels.dtype != np.uint8:
        if pixels.dtype.kind not in "iu" or pixels.min() < 0 or pixels.max() > 255:
            raise BadRows(f"row {row}: the image array must hold uint8 values 0-255, got {pixels.dtype}")
        pixels = pixels.astype(np.uint8)
    return resize_array(pixels, height, width)


def _image(value: Any, row: int, height: int, width: int) -> np.ndarray:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decoded(bytes(value), row, height, width)
    if isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=False)  # line breaks (base64.encodebytes) are allowed
        except (binascii.Error, ValueError):
            raise BadRows(f"row {row}: the image string is not base64") from None
        return _decoded(data, row, height, width)
    if isinstance(value, (list, tuple, np.ndarray)):
        return _pixels(value, row, height, width)
    kind = type(value).__name__
    raise BadRows(f"row {row}: image must be base64 JPEG/PNG, bytes or an (h, w, 3) uint8 array, got {kind}")


def batch_of(model_input: Any, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (B, height, width, 3), modality int64 (B,))`` of the input rows."""
    images, modality = _columns(model_input)
    mods = np.array([_modality(m, i) for i, m in enumerate(modality)], dtype=np.int64)
    pixels = np.stack([_image(v, i, height, width) for i, v in enumerate(images)])
    return pixels, mods
