"""Mixing the training sets and loading them (docs/data.md, "The training sample").

:class:`BalancedMix` is the reference's ``MultipleDatasets(make_same_len=True)`` with its random fill made
reproducible, plus optional group weights. Sharding, shuffling and resuming are the trainer's sampler's job
(:class:`hap3d.engine.train.ResumableSampler`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np
from torch.utils.data import ConcatDataset, Dataset, Subset

from hap3d.data.base import TrainDataset


def set_epoch(dataset: Dataset, epoch: int) -> None:
    """Call ``set_epoch`` on ``dataset``, or on every dataset inside a ConcatDataset / Subset."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    elif isinstance(dataset, ConcatDataset):
        for child in dataset.datasets:
            set_epoch(child, epoch)
    elif isinstance(dataset, Subset):
        set_epoch(dataset.dataset, epoch)


class BalancedMix(Dataset):
    """Groups of datasets mixed into one epoch of ``n_groups * max_len`` samples.

    The epoch is split into consecutive blocks, one per group, of sizes proportional to ``weights`` (equal
    weights: ``max_len`` each, the reference's ``make_same_len``). A group of N samples given a block of n
    visits ``i mod N`` for the first ``N * (n // N)`` positions and a random index for the rest. Those random
    indices come from a generator seeded by (seed, epoch, global index), so every rank and worker agrees on
    them and a run can be repeated; the reference drew them from the unseeded global ``random``.

    A sample handed out more than once in an epoch must not be an identical copy (the reference drew fresh
    augmentation each time), so every position also has a *visit* number that joins the sample's random seed
    (:meth:`hap3d.data.base.TrainDataset.sample`): the cycle ``i // N`` for the cycled positions and
    ``n // N + j`` for the j-th random fill, which no cycle uses. (sample, visit) is therefore unique within a
    block, and a group that is not cycled (visit 0) gives the same samples as indexing its datasets directly.
    """

    def __init__(
        self, datasets_groups: Sequence[Dataset], weights: Sequence[float] | None = None, seed: int = 0
    ) -> None:
        if not datasets_groups:
            raise ValueError("BalancedMix needs at least one dataset group")
        self.groups = list(datasets_groups)
        self.sizes = [len(g) for g in self.groups]
        empty = [i for i, n in enumerate(self.sizes) if n == 0]
        if empty:
            raise ValueError(f"BalancedMix: dataset group(s) {empty} are empty (no sample survived filtering)")
        weights = [1.0] * len(self.groups) if weights is None else [float(w) for w in weights]
        if len(weights) != len(self.groups) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"BalancedMix: need one non-negative weight per group ({len(self.groups)}), got {weights}")
        self.weights = weights
        self.seed = seed
        self.epoch = 0
        self.max_len = max(self.sizes)
        total = len(self.groups) * self.max_len
        cum = np.cumsum(weights) / sum(weights)
        self.bounds = [0] + [int(round(total * c)) for c in cum[:-1]] + [total]  # block g = [bounds[g], bounds[g+1])

    def __len__(self) -> int:
        return self.bounds[-1]

    def set_epoch(self, epoch: int) -> None:
        """New epoch for the random fill and for every member dataset's augmentation stream."""
        self.epoch = epoch
        for group in self.groups:
            set_epoch(group, epoch)

    def locate(self, index: int) -> tuple[int, int, int]:
        """(group, index within the group, visit number) of a global index (see the class docstring)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for BalancedMix of length {len(self)}")
        g = bisect.bisect_right(self.bounds, index) - 1
        i, n, size = index - self.bounds[g], self.bounds[g + 1] - self.bounds[g], self.sizes[g]
        cycled = size * (n // size)
        if i < cycled:
            return g, i % size, i // size
        return g, int(np.random.default_rng([self.seed, self.epoch, index]).integers(size)), n // size + i - cycled

    def __getitem__(self, index: int):
        g, i, visit = self.locate(index)
        return fetch(self.groups[g], i, visit)


def fetch(dataset: Dataset, index: int, visit: int):
    """``dataset[index]`` as its ``visit``-th hand-out, passed down through ConcatDataset / Subset to a dataset
    that takes a visit (the training readers); other datasets are simply indexed."""
    if isinstance(dataset, ConcatDataset):
        d = bisect.bisect_right(dataset.cumulative_sizes, index)
        return fetch(dataset.datasets[d], index - (dataset.cumulative_sizes[d - 1] if d else 0), visit)
    if isinstance(dataset, Subset):
        return fetch(dataset.dataset, dataset.indices[index], visit)
    if isinstance(dataset, TrainDataset):
        return dataset.sample(index, visit)
    return dataset[index]
