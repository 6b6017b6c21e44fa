"""Feed an image set to a network: decode and preprocess in worker processes, in batches.

An image set is a sequence of :class:`ImageRef` (an integer id and either a file path or the
bytes themselves). :func:`image_batches` yields :class:`ImageBatch` objects; images that fail to
decode are dropped from their batch and listed in it (``skipped_ids``), never raised.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from worker.pipelines.imagesets import BadImage, decode_image
from worker.pipelines.networks import Preprocess, preprocess_image

__all__ = ["ImageBatch", "ImageRef", "image_batches", "preprocessed_batches"]


@dataclass(frozen=True)
class ImageRef:
    """One image of a set: ``image_id`` is the caller's id (e.g. the database row's)."""

    image_id: int
    path: str | None = None
    data: bytes | None = None
    source_id: int | None = None  # the source photo's id (None: the image is its own)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise BadImage("image has neither bytes nor a path")
        try:
            with open(self.path, "rb") as handle:
                return handle.read()
        except OSError as error:
            raise BadImage(f"cannot read file ({error.strerror or type(error).__name__})") from None


@dataclass
class ImageBatch:
    """``pixels: [batch, 3, crop, crop]`` preprocessed; ``image_ids: [batch]`` int64;
    ``source_ids: [batch]`` int64, the source photo of each image (its own id when it has
    none), or None when no image of the set names a source."""

    image_ids: Tensor
    pixels: Tensor
    skipped_ids: list[int] = field(default_factory=list)
    source_ids: Tensor | None = None

    def __len__(self) -> int:
        return int(self.image_ids.shape[0])


_Item = tuple[int, int | None, Tensor | None]  # (image id, source id, pixels or None)


class _DecodingDataset(Dataset[_Item]):
    def __init__(self, refs: Sequence[ImageRef], preprocess: Preprocess) -> None:
        self.refs = refs
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> _Item:
        ref = self.refs[index]
        try:
            decoded = decode_image(ref.read())
        except BadImage:
            return ref.image_id, ref.source_id, None
        return ref.image_id, ref.source_id, preprocess_image(decoded.image, self.preprocess)


def _collate(items: list[_Item]) -> ImageBatch:
    good = [item for item in items if item[2] is not None]
    skipped = [image_id for image_id, _, pixels in items if pixels is None]
    with_sources = any(source is not None for _, source, _ in items)
    if not good:
        empty = torch.empty(0, dtype=torch.int64)
        return ImageBatch(empty, torch.empty(0), skipped, empty if with_sources else None)
    ids = torch.tensor([image_id for image_id, _, _ in good], dtype=torch.int64)
    sources = None
    if with_sources:
        own = [image_id if source is None else source for image_id, source, _ in good]
        sources = torch.tensor(own, dtype=torch.int64)
    pixels = torch.stack([pixels for _, _, pixels in good])  # type: ignore[misc]
    return ImageBatch(ids, pixels, skipped, sources)


def image_batches(
    refs: Sequence[ImageRef],
    preprocess: Preprocess,
    batch_size: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[ImageBatch]:
    """Decoded, preprocessed batches in ``refs`` order (``num_workers`` decoding processes)."""
    loader = DataLoader(
        _DecodingDataset(refs, preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers > 0 else None,
        persistent_workers=False,
        # Forking a process that already runs threads (torch's pool, a web server's) can leave
        # the children deadlocked on a lock held at fork time: start decoders fresh instead.
        multiprocessing_context="spawn" if num_workers > 0 else None,
    )
    yield from loader


def preprocessed_batches(batches: Iterator[ImageBatch] | Sequence[ImageBatch]) -> Iterator[Tensor]:
    """Only the pixels of non-empty batches (what a dictionary fit consumes)."""
    for batch in batches:
        if len(batch):
            yield batch.pixels
