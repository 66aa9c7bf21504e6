"""BalancedMix (the reference's make_same_len mixing, seeded) and the training loader."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import test_data_2d as d2
import torch
from torch.utils.data import ConcatDataset, Dataset

from hap3d.data import build_fit_model
from hap3d.data.crowdpose import CrowdPose
from hap3d.data.mix import BalancedMix
from hap3d.data.mpii import MPII
from hap3d.engine.train import ResumableSampler


class Toy(Dataset):
    """Samples that say where they came from, in which epoch, and with how many torch threads."""

    def __init__(self, n: int, tag: int) -> None:
        self.n, self.tag, self.epoch = n, tag, 0

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(i)
        meta = {"epoch": self.epoch, "threads": torch.get_num_threads()}
        return {"tag": self.tag, "index": torch.tensor(i), "meta": meta}


def toy_mix(**kw) -> BalancedMix:
    return BalancedMix([ConcatDataset([Toy(5, 0), Toy(3, 1)]), ConcatDataset([Toy(3, 2)])], **kw)


def test_lengths_and_indices():
    mix = toy_mix(seed=7)
    assert len(mix) == 16  # 2 groups x max(8, 3)
    assert [mix.locate(g) for g in range(8)] == [(0, i, 0) for i in range(8)]  # not cycled: visit 0
    # group 1 has 3 samples in a block of 8: two full cycles (visits 0, 1), then two random fills (visits 2, 3)
    assert [mix.locate(g) for g in range(8, 14)] == [(1, i % 3, i // 3) for i in range(6)]
    assert [mix.locate(g)[0] for g in (14, 15)] == [1, 1] and all(0 <= mix.locate(g)[1] < 3 for g in (14, 15))
    assert [mix.locate(g)[2] for g in (14, 15)] == [2, 3]
    assert [(s["tag"], int(s["index"])) for s in (mix[0], mix[5], mix[7], mix[8])] == [(0, 0), (1, 0), (1, 2), (2, 0)]
    with pytest.raises(IndexError):
        mix[16]


def test_random_fill_is_seeded():
    a, b = toy_mix(seed=3), toy_mix(seed=3)  # e.g. two ranks
    fills = []
    for epoch in range(12):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert [a.locate(g) for g in range(16)] == [b.locate(g) for g in range(16)]
        fills.append((a.locate(14), a.locate(15)))
    assert len(set(fills)) > 1  # the fill changes with the epoch
    a.set_epoch(4)
    assert (a.locate(14), a.locate(15)) == fills[4]  # and is reproducible


def test_weights():
    assert toy_mix(weights=[0.5, 0.5]).bounds == toy_mix().bounds == [0, 8, 16]
    mix = toy_mix(weights=[3, 1], seed=1)
    assert len(mix) == 16 and mix.bounds == [0, 12, 16]
    assert [mix.locate(g)[:2] for g in range(8)] == [(0, i) for i in range(8)]
    assert all(mix.locate(g)[0] == 0 for g in range(8, 12))  # 4 random fills from group 0
    assert [mix.locate(g)[:2] for g in range(12, 15)] == [(1, 0), (1, 1), (1, 2)] and mix.locate(15)[0] == 1
    only_first = toy_mix(weights=[1, 0])
    assert {only_first.locate(g)[0] for g in range(16)} == {0}
    with pytest.raises(ValueError):
        toy_mix(weights=[1])
    with pytest.raises(ValueError, match="empty"):
        BalancedMix([Toy(3, 0), Toy(0, 1)])


def test_set_epoch_reaches_every_dataset():
    mix = toy_mix()
    mix.set_epoch(5)
    leaves = [d for g in mix.groups for d in g.datasets]
    assert [d.epoch for d in leaves] == [5, 5, 5]


def epoch_indices(loader, epoch: int) -> list[tuple[int, int]]:
    loader.sampler.set_epoch(epoch)
    return [(int(t), int(i)) for batch in loader for t, i in zip(batch["tag"], batch["index"])]


@pytest.fixture(scope="module")
def readers(tmp_path_factory, body_dir):
    root = tmp_path_factory.mktemp("mixdata")
    fit = build_fit_model(body_dir)
    return MPII(d2.write_mpii(root), fit, seed=3), CrowdPose(d2.write_crowdpose(root), fit, seed=3)


def test_loader_over_real_readers(readers):
    mpii, crowdpose = readers

    def run(workers: int) -> list[dict]:
        mix = BalancedMix([ConcatDataset([mpii]), ConcatDataset([crowdpose])], seed=3)
        sampler = ResumableSampler(len(mix), 0, 1, seed=8, batch_size=2)
        sampler.set_epoch(1)
        mix.set_epoch(1)
        loader = torch.utils.data.DataLoader(mix, batch_size=2, sampler=sampler, num_workers=workers, drop_last=True)
        return list(loader)

    a, b = run(0), run(2)
    assert len(a) == 3  # 6 samples, batches of 2
    assert a[0]["inputs"]["img"].shape == (2, 3, 256, 256) and a[0]["meta"]["is_valid_fit"].shape == (2,)
    for x, y in zip(a, b):
        for part in ("inputs", "targets", "meta"):
            for key in x[part]:
                assert torch.equal(x[part][key], y[part][key]), (part, key)
    assert mpii.epoch == crowdpose.epoch == 1  # in-process run applied the epoch to the readers


def flat(sample: dict) -> list[torch.Tensor]:
    return [v for part in sample.values() for v in part.values()]


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(x, y) for x, y in zip(flat(a), flat(b)))


def test_repeats_in_an_epoch_are_fresh_draws(readers):
    """The smaller group is cycled: each repeat of a sample gets its own augmentation and PoseFix noise, while
    the same mix index always gives the same sample (any worker, any rank)."""
    mpii, crowdpose = readers
    mix = BalancedMix([ConcatDataset([mpii, crowdpose]), ConcatDataset([mpii])], seed=3)
    mix.set_epoch(2)
    assert [mix.locate(g) for g in range(6, 12)] == [(1, i % 3, i // 3) for i in range(6)]
    first, second = mix[6], mix[9]  # MPII sample 0, first and second visit of the epoch
    assert not torch.equal(first["inputs"]["img"], second["inputs"]["img"])
    assert not torch.equal(first["inputs"]["joints"], second["inputs"]["joints"])
    assert same(mix[9], second)
    assert same(first, mpii[0]) and same(mix[0], mpii[0])  # visit 0 is plain indexing
    assert same(mix[3], crowdpose[0])  # through the ConcatDataset to the right reader and local index


def test_datasets_have_their_own_streams(readers):
    mpii, crowdpose = readers
    assert mpii.seed == crowdpose.seed and mpii.epoch == crowdpose.epoch
    assert mpii.salt != crowdpose.salt
    # the same in every process (ranks on other machines), unlike Python's randomised str hash
    code = "from hap3d.data.mpii import MPII; print(MPII.__new__(MPII).salt)"
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout
        assert int(out) == mpii.salt
    assert mpii.rng_for(0).random() != crowdpose.rng_for(0).random()
    assert mpii.rng_for(0).random() == mpii.rng_for(0).random()
    assert mpii.rng_for(0, visit=1).random() != mpii.rng_for(0).random()
