"""PoseFix synthetic input poses (hap3d.data.posefix): tables, radii, outcome frequencies, determinism, and the two
reference behaviours kept under ``reference_quirks`` (docs/reference-differences.md R27, R28).

Frequency tests use a *separated* layout: a joint's candidates (its ground truth, the neighbours' same joint, its
left/right partner and the neighbours' partner joint) are all much farther apart than d(0.10). Every error type then
lands in its own region, so an outcome is classified exactly from its distances (see ``classify``), and no ring
loses points to the rejection tests, so each type's expected frequency is its table value, set to 0 when the type
has no candidate, renormalised. Contested layouts (candidates within reach of each other) are checked with the
geometric invariants every outcome must satisfy.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from hap3d.body.joints import COCO17, get_joint_set
from hap3d.data.posefix import (
    ERROR_TYPES,
    OKS_SIGMAS,
    PARTNER,
    SYMMETRIC_PAIRS,
    crop_box_area,
    oks_radius,
    replace_joints,
    synthesize_pose,
    type_probabilities,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_style import posefix_joint  # noqa: E402  (the transcription the data benchmark runs)

JITTER, MISS, INV, SWAP, GOOD = (ERROR_TYPES.index(t) for t in ("jitter", "miss", "inv", "swap", "good"))
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
BOX = (0.0, 0.0, 100.0, 100.0)  # area 1e4 under IDENTITY: d(0.10) <= 46 px for every joint
RADII = {ks: oks_radius(ks, 1e4) for ks in (0.85, 0.5, 0.1)}
SPACING = 400.0  # between candidates in the separated layout, >> 2·d(0.10)


def separated_pose(valid: np.ndarray | None = None) -> np.ndarray:
    joints = np.zeros((17, 3))
    joints[:, 0] = SPACING * np.arange(17)
    joints[:, 2] = 1.0 if valid is None else valid
    return joints


def separated_neighbours(joints: np.ndarray, k: int) -> np.ndarray:
    """k overlapping people (all joints valid), person i shifted down by (i+1)·SPACING; zeros((1,17,3)) if k = 0."""
    if k == 0:
        return np.zeros((1, 17, 3))
    near = np.repeat(joints[None], k, axis=0)
    near[:, :, 1] += SPACING * np.arange(1, k + 1)[:, None]
    near[:, :, 2] = 1.0
    return near


def classify(out: np.ndarray, joints: np.ndarray, near: np.ndarray, j: int, quirks: bool) -> np.ndarray:
    """Error type of joint j in each separated-layout outcome (n, 17, 3), from its distance to each candidate."""
    d85, d50, d10 = (RADII[ks][j] for ks in (0.85, 0.5, 0.1))
    o = out[:, j, :2]
    p = PARTNER[j]
    swaps = [near[k, i, :2] for k in range(len(near)) for i in (j, p) if i >= 0 and near[k, i, 2] > 0]
    cands = [np.broadcast_to(c, o.shape) for c in (joints[j, :2], *swaps)]
    if p >= 0 and joints[p, 2] > 0:  # R27: with quirks, a partner that comes earlier is already synthesised
        cands.append(out[:, p, :2] if quirks and p < j else np.broadcast_to(joints[p, :2], o.shape))
    dist = np.linalg.norm(np.stack(cands) - o, axis=2)  # (candidates, n): gt, swaps..., inv?
    kind = np.full(len(o), MISS)
    if len(cands) > 1 + len(swaps):
        kind[dist[-1] < d50] = INV
    kind[(dist[1 : 1 + len(swaps)] < d50).any(axis=0)] = SWAP
    kind[dist[0] < d50] = JITTER
    kind[dist[0] < d85] = GOOD
    on_a_miss_ring = ((dist >= d50) & (dist <= d10 + 1e-6)).any(axis=0)
    assert on_a_miss_ring[kind == MISS].all(), "outcome in no error region"
    return kind


def draw(joints, near, num_overlap, n, seed, quirks=True, box=BOX) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([synthesize_pose(joints, box, near, num_overlap, IDENTITY, rng, quirks) for _ in range(n)])


# ----------------------------------------------------------------------------------------------- tables and radii
def test_tables_match_the_reference() -> None:
    # (num_valid, num_overlap) -> {joint: (jitter, miss, inv, swap)}, written out from the reference's tables
    # (replace_joint_img in its common/utils/posefix.py), rows by the number of valid joints, columns by joint group
    cases = {
        (17, 0): {0: (0.10, 0.02, 0.01, 0.01), 5: (0.15, 0.05, 0.03, 0.06), 11: (0.20, 0.10, 0.06, 0.03),
                  15: (0.10, 0.05, 0.06, 0.03), 8: (0.15, 0.10, 0.03, 0.06)},
        (8, 1): {0: (0.15, 0.10, 0.01, 0.02), 12: (0.25, 0.15, 0.06, 0.10), 6: (0.20, 0.13, 0.03, 0.15)},
        (8, 0): {6: (0.20, 0.13, 0.03, 0.06)},
        (4, 0): {16: (0.15, 0.20, 0.06, 0.03), 3: (0.20, 0.15, 0.01, 0.01), 9: (0.20, 0.25, 0.03, 0.06)},
        (12, 3): {7: (0.15, 0.10, 0.03, 0.15)},
        (15, 3): {13: (0.10, 0.10, 0.06, 0.10)},
        (16, 5): {7: (0.15, 0.10, 0.03, 0.06)},
        (11, 2): {7: (0.15, 0.10, 0.03, 0.06)},
    }
    for (num_valid, num_overlap), rows in cases.items():
        table = type_probabilities(num_valid, num_overlap)
        assert table.shape == (17, 5)
        np.testing.assert_allclose(table.sum(axis=1), 1.0)
        assert (table >= 0).all()
        for j, probs in rows.items():
            np.testing.assert_allclose(table[j, :4], probs, err_msg=f"{num_valid=} {num_overlap=} {j=}")
    assert set(SYMMETRIC_PAIRS) == {(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)}
    assert PARTNER[0] == -1 and all(PARTNER[a] == b and PARTNER[b] == a for a, b in SYMMETRIC_PAIRS)
    np.testing.assert_allclose(OKS_SIGMAS[[0, 5, 11, 16]], [0.026, 0.079, 0.107, 0.089])


def test_oks_radius_formula() -> None:
    area = 12345.0
    two_sigma = 2 * OKS_SIGMAS
    for ks, factor in ((0.85, 0.5701), (0.5, 1.1774), (0.1, 2.1460)):
        d = oks_radius(ks, area)
        np.testing.assert_allclose(d, np.sqrt(-2 * area * two_sigma**2 * math.log(ks)), rtol=1e-12)
        np.testing.assert_allclose(d, factor * two_sigma * math.sqrt(area), rtol=2e-4)  # d(ks) / (2σ√area) to 4 places
        np.testing.assert_allclose(np.exp(-(d**2) / (2 * area * two_sigma**2)), ks)  # the OKS of d is ks


def test_crop_box_area_uses_transformed_sides() -> None:
    scale, angle = 1.7, 0.4
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    trans = np.concatenate([rot, [[12.0], [-5.0]]], axis=1)
    assert crop_box_area((30, 40, 50, 80), trans) == pytest.approx(scale**2 * 50 * 80)


# ----------------------------------------------------------------------------------------------- basic contract
def realistic_case() -> tuple[np.ndarray, np.ndarray]:
    """A COCO-like person in a 256 crop and two overlapping people, some of their joints unannotated at (0, 0)."""
    xy = np.array([[128, 40], [134, 34], [122, 34], [142, 38], [114, 38], [150, 70], [106, 70], [165, 110],
                   [91, 110], [170, 145], [86, 145], [142, 150], [114, 150], [144, 195], [112, 195], [146, 240],
                   [110, 240]], float)
    joints = np.concatenate([xy, np.ones((17, 1))], axis=1)
    joints[[3, 10], 2] = 0
    near = np.stack([np.concatenate([xy + shift, np.ones((17, 1))], axis=1) for shift in ([35, 8], [-60, 30])])
    near[1, 11:, :2] = 0  # a neighbour's unannotated joints stay at the origin (and count as valid: R34)
    return joints, near


def test_output_shape_validity_and_determinism() -> None:
    joints, near = realistic_case()
    inputs = joints.copy(), near.copy()
    box = (80, 20, 100, 230)
    a = synthesize_pose(joints, box, near, 2, IDENTITY, np.random.default_rng(7))
    np.testing.assert_array_equal(joints, inputs[0])
    np.testing.assert_array_equal(near, inputs[1])
    b = synthesize_pose(joints, box, near, 2, IDENTITY, np.random.default_rng(7))
    c = synthesize_pose(joints, box, near, 2, IDENTITY, np.random.default_rng(8))
    assert a.shape == (17, 3) and a.dtype == np.float32
    assert np.isfinite(a).all() and (a[:, 2] == 1).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d10 = oks_radius(0.1, crop_box_area(box, IDENTITY))
    people = np.concatenate([joints[None, :, :2], near[:, :, :2]])
    for j in range(17):  # every outcome lies on some ring: within d(0.10) of a candidate (people's j or partner)
        p = PARTNER[j]
        cands = people[:, j] if p < 0 else np.concatenate([people[:, j], people[:, p], a[[p], :2]])
        assert np.linalg.norm(cands - a[j, :2], axis=1).min() <= d10[j] + 1e-3
    # extra joints (e.g. COCO18's Pelvis) are ignored
    joints18 = np.concatenate([joints, [[128, 150, 1]]])
    np.testing.assert_array_equal(synthesize_pose(joints18, box, near, 2, IDENTITY, np.random.default_rng(7)), a)


def test_no_type_possible_gives_zero_joint() -> None:
    """A zero-area box shrinks every ring to its centre; a neighbour on top of every joint then rejects them all."""
    joints = separated_pose()
    near = joints[None].copy()
    out = synthesize_pose(joints, (10, 10, 0, 50), near, 1, IDENTITY, np.random.default_rng(0), reference_quirks=False)
    np.testing.assert_array_equal(out, 0)


def test_duplicate_neighbour_leaves_only_miss_and_inv() -> None:
    """A neighbour's joint exactly on the joint rejects every point tested against it with the point's own radius
    (jitter, good, swap), while miss (clearance d(0.50) < r) and inv (far partner) stay possible: only those two are
    drawn, in the ratio of their table values, and miss mixes its (contested, fully surviving) rings by pool size."""
    joints = separated_pose()
    tested = [0, 5, 12]
    near = joints[None].copy()
    near[0, :, 2] = np.isin(np.arange(17), tested)
    prior = type_probabilities(17, 1)
    n = 800
    out = draw(joints, near, 1, n, seed=3, quirks=False)
    for j in tested:
        p = PARTNER[j]
        rings = [joints[j, :2]] + ([joints[p, :2]] if p >= 0 else [])  # miss rings: gt, its duplicate, the partner
        d = np.stack([np.linalg.norm(out[:, j, :2] - c, axis=1) for c in rings])
        is_miss = ((d >= RADII[0.5][j]) & (d <= RADII[0.1][j] + 1e-6)).any(axis=0)
        is_inv = d[1] < RADII[0.5][j] if p >= 0 else np.zeros(n, bool)
        assert (is_miss ^ is_inv).all()
        p_miss = prior[j, MISS] / (prior[j, MISS] + (prior[j, INV] if p >= 0 else 0))
        assert abs(is_miss.mean() - p_miss) <= 4.5 * math.sqrt(p_miss * (1 - p_miss) / n) + 1e-12
        if p >= 0:  # every miss ring keeps all its points: the pool is 2000 (gt) + 500 (duplicate) + 500 (partner)
            around_partner = (is_miss & (d[1] <= RADII[0.1][j] + 1e-6)).sum() / is_miss.sum()
            assert abs(around_partner - 1 / 6) <= 4.5 * math.sqrt(5 / 36 / is_miss.sum())


# ----------------------------------------------------------------------------------------------- frequencies
FREQUENCY_CASES = {
    # name: (valid own joints, neighbours, num_overlap, quirks, draws)
    "all_valid_alone": (np.ones(17), 0, 0, False, 3000),
    "few_valid_crowded": (np.isin(np.arange(17), [0, 1, 2, 5, 6, 9, 11, 12]).astype(float), 1, 1, True, 2000),
    "very_few_valid": (np.isin(np.arange(17), [0, 5, 12, 16]).astype(float), 2, 2, True, 2000),
}


@pytest.mark.parametrize("case", FREQUENCY_CASES)
def test_error_type_frequencies_match_tables(case: str) -> None:
    valid, k, num_overlap, quirks, n = FREQUENCY_CASES[case]
    joints = separated_pose(valid)
    near = separated_neighbours(joints, k)
    out = draw(joints, near, num_overlap, n, seed=11, quirks=quirks)
    prior = type_probabilities(int(valid.sum()), num_overlap)
    for j in range(17):
        kind = classify(out, joints, near, j, quirks)
        counts = np.bincount(kind, minlength=5)
        miss_at_gt = np.sum((kind == MISS) & (np.linalg.norm(out[:, j, :2] - joints[j, :2], axis=1) <= RADII[0.1][j]))
        possible = np.ones(5, bool)
        possible[INV] = PARTNER[j] >= 0 and valid[PARTNER[j]] > 0
        possible[SWAP] = k > 0
        expected = prior[j] * possible / (prior[j] * possible).sum()
        tol = 4.5 * np.sqrt(expected * (1 - expected) / n)
        assert (counts[~possible] == 0).all(), f"{case} joint {j}: impossible type drawn {counts}"
        assert (np.abs(counts / n - expected) <= tol + 1e-12).all(), f"{case} joint {j}: {counts / n} vs {expected}"
        # miss pools all 2000 points of the gt ring but only a quarter of every other candidate's ring
        n_other = possible[INV] + k * (1 + (PARTNER[j] >= 0))
        share = 2000 / (2000 + 500 * n_other)
        n_miss = counts[MISS]
        assert abs(miss_at_gt / n_miss - share) <= 4.5 * math.sqrt(share * (1 - share) / n_miss) + 1e-12


# ----------------------------------------------------------------------------------------------- reference quirks
def test_r27_inv_follows_the_synthesised_partner() -> None:
    """docs/reference-differences.md R27. From the same seed, quirks on/off agree on every joint whose partner comes
    later, and on the others except for outcomes drawn around the inv candidate (inv, or miss on its ring): those keep
    their offset from the partner but around its synthesised (on) or original (off) position. A sample whose
    synthesised partner lands within reach of the joint's own rings changes the rejection work, hence the stream, and
    is skipped."""
    joints = separated_pose()
    near = separated_neighbours(joints, 0)
    first = (PARTNER < 0) | (PARTNER > np.arange(17))
    reach = RADII[0.1] + RADII[0.5]  # the farthest a candidate can interfere with a ring
    n_inv = n_compared = 0
    for s in range(500):
        on, off = (synthesize_pose(joints, BOX, near, 0, IDENTITY, np.random.default_rng([5, s]), q) for q in (1, 0))
        np.testing.assert_array_equal(on[first], off[first])
        second = np.flatnonzero(~first)
        if (np.linalg.norm(on[PARTNER[second], :2] - joints[second, :2], axis=1) <= reach[second]).any():
            continue
        n_compared += 1
        for j in second:
            p = PARTNER[j]
            if np.linalg.norm(off[j, :2] - joints[p, :2]) <= RADII[0.1][j]:  # inv, or miss around the inv candidate
                n_inv += classify(off[None], joints, near, j, quirks=False)[0] == INV
                np.testing.assert_allclose(on[j, :2] - on[p, :2], off[j, :2] - joints[p, :2], atol=1e-3)
            else:
                np.testing.assert_array_equal(on[j], off[j])
    assert n_compared > 300 and n_inv > 20


def test_r28_empty_inv_slot_hides_first_swap_inv_candidate() -> None:
    """docs/reference-differences.md R28. Without an inv candidate the reference's swap sampling skips the first
    swap-inv candidate as a source: swaps then land only on the neighbour's same joint. Fixed, they land on both
    neighbour joints equally often."""
    valid = (np.arange(17) % 2 == 0).astype(float)  # odd joints invalid: even joints have no inv candidate
    joints = separated_pose(valid)
    near = separated_neighbours(joints, 1)
    n = 1200
    on, off = draw(joints, near, 1, n, seed=9, quirks=True), draw(joints, near, 1, n, seed=9, quirks=False)
    unaffected = (np.arange(17) % 2 == 1) | (np.arange(17) == 0)  # odd joints have inv, the nose no partner
    np.testing.assert_array_equal(on[:, unaffected], off[:, unaffected])
    for j in (6, 12):
        d50 = RADII[0.5][j]
        for out, quirk in ((on, True), (off, False)):
            near_same = np.linalg.norm(out[:, j, :2] - near[0, j, :2], axis=1) < d50
            near_partner = np.linalg.norm(out[:, j, :2] - near[0, PARTNER[j], :2], axis=1) < d50
            assert near_same.sum() > 30
            if quirk:
                assert near_partner.sum() == 0
            else:
                share = near_partner.sum() / (near_same.sum() + near_partner.sum())
                assert abs(share - 0.5) < 4.5 * math.sqrt(0.25 / (near_same.sum() + near_partner.sum()))


# ----------------------------------------------------------------------------------------------- contested layouts
def satisfies_some_type(o, cands, inv_idx, swap_skip, radii, eps=1e-3) -> bool:
    """Whether outcome o meets the distance tests of at least one error type (the rejection rules of each error
    type's ring: hap3d.data.posefix's module docstring)."""
    _, d50, d10 = radii
    dist = np.linalg.norm(cands - o, axis=1)
    others = lambda i: np.delete(dist, i)  # noqa: E731
    if dist[0] < d50 + eps and (others(0) > dist[0] - eps).all():  # good / jitter
        return True
    for m in range(len(cands)):  # miss
        if d50 - eps <= dist[m] <= d10 + eps and (others(m) > d50 - eps).all():
            return True
    if inv_idx is not None and dist[inv_idx] < d50 + eps and (others(inv_idx) > dist[inv_idx] - eps).all():
        return True
    for s in range(1, len(cands)):  # swap
        if s == swap_skip or dist[s] >= d50 + eps or dist[0] <= dist[s] - eps:
            continue
        if swap_skip is None or swap_skip >= len(cands) or dist[swap_skip] > dist[s] - eps:
            return True
    return False


@pytest.mark.parametrize("quirks", [True, False])
def test_contested_outcomes_respect_the_distance_tests(quirks: bool) -> None:
    joints, near = realistic_case()
    box = (80, 20, 100, 230)
    area = crop_box_area(box, IDENTITY)
    radii = np.stack([oks_radius(ks, area) for ks in (0.85, 0.5, 0.1)], axis=1)
    out = draw(joints, near, 2, 150, seed=2, quirks=quirks, box=box)
    assert (out[:, :, 2] == 1).all()
    for o in out:
        for j in range(17):
            p = PARTNER[j]
            swap = [near[k, j, :2] for k in range(len(near))]
            has_inv = p >= 0 and joints[p, 2] > 0
            inv = [(o if quirks and p < j else joints)[p, :2]] if has_inv else []
            swap_inv = [near[k, p, :2] for k in range(len(near))] if p >= 0 else []
            cands = np.array([joints[j, :2], *swap, *inv, *swap_inv])
            slot = 1 + len(swap)
            skip = slot if (has_inv or (quirks and slot < len(cands))) else None
            assert satisfies_some_type(o[j, :2], cands, slot if has_inv else None, skip, radii[j]), (j, o[j])


@pytest.mark.parametrize(("j", "quirks"), [(9, True), (9, False)])
def test_matches_a_direct_transcription_of_the_reference(j: int, quirks: bool) -> None:
    """The vectorised, lazily simulated sampler and a direct transcription (the data benchmark's baseline,
    benchmarks/reference_style.py) give the same outcome distribution in a
    crowded layout: each outcome is binned by its nearest candidate and OKS distance band, and the two histograms
    must pass a chi-square test. Joint 9's partner comes later, so the transcription can run it alone, and is invalid
    while the neighbour's is not: the case of docs/reference-differences.md R28."""
    from scipy.stats import chi2_contingency

    joints, near = realistic_case()
    near = near[:1]
    box = (80, 20, 100, 230)
    area = crop_box_area(box, IDENTITY)
    d = np.stack([oks_radius(ks, area)[j] for ks in (0.85, 0.5, 0.1)])
    n = 500
    ours = draw(joints, near, 1, n, seed=21 + j, quirks=quirks, box=box)[:, j]
    rng = np.random.default_rng(22 + j)
    direct = np.stack([posefix_joint(j, joints, near, area, 1, rng, quirks) for _ in range(n)])
    cands = np.concatenate([joints[[j], :2], near[:, j, :2], joints[[PARTNER[j]], :2], near[:, PARTNER[j], :2]])

    def bins(out: np.ndarray) -> np.ndarray:
        dist = np.linalg.norm(out[:, None, :2] - cands[None], axis=2)
        return dist.argmin(axis=1) * 4 + np.searchsorted(d, dist.min(axis=1))

    table = np.stack([np.bincount(bins(ours), minlength=4 * len(cands)),
                      np.bincount(bins(direct), minlength=4 * len(cands))])
    table = table[:, table.sum(axis=0) > 0]
    assert chi2_contingency(table).pvalue > 1e-3, table


# ----------------------------------------------------------------------------------------------- replace_joints
def test_replace_joints_by_name_never_pelvis() -> None:
    names = get_joint_set("mpii16").joints
    dataset = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    synth = np.full((17, 3), -1.0, dtype=np.float32)
    synth[:, 0] = 1000 + np.arange(17)
    replace = [names.index(n) for n in ("R_Ankle", "L_Hip", "Pelvis", "L_Wrist")]
    out = replace_joints(dataset, synth, names, replace)
    assert out is not dataset and out.shape == dataset.shape
    for i, name in enumerate(names):
        if name in ("R_Ankle", "L_Hip", "L_Wrist"):
            assert out[i, 0] == 1000 + COCO17.index(name) and out[i, 1] == -1.0
            assert out[i, 2] == dataset[i, 2]  # validity is the dataset's own
        else:
            np.testing.assert_array_equal(out[i], dataset[i])
    with pytest.raises(ValueError, match="Thorax"):
        replace_joints(dataset, synth, names, [names.index("Thorax")])
