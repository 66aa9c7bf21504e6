"""PoseFix-style synthetic input 2D poses (docs/data.md, "The training sample").

Training feeds the network ground-truth 2D joints corrupted the way real 2D pose estimators fail (Moon et al.,
PoseFix, CVPR 2019), so that it learns to cope with the detector poses it gets at test time. Each of the 17 COCO
joints independently becomes one of five outcomes, defined with the OKS keypoint similarity
``ks = exp(-d² / (2·area·(2σ)²))`` of the displacement ``d``:

* ``good``   - close to the truth (ks > 0.85);
* ``jitter`` - a moderate displacement around the truth (0.50 < ks < 0.85);
* ``miss``   - a large displacement (0.10 < ks < 0.50) around the truth or around any other candidate;
* ``inv``    - near the same person's left/right partner joint (left/right confusion);
* ``swap``   - near this joint (or its partner) of an overlapping person.

Module constants hold the reference's tables: ``OKS_SIGMAS`` (per-joint OKS σ, which scale every error radius),
``SYMMETRIC_PAIRS`` / ``PARTNER`` (left/right partners for inv), and the per-joint prior of each error type by joint
group: ``JITTER_PROB`` and ``MISS_PROB`` (rows keyed by an upper bound on the number of valid joints), ``INV_PROB``,
``SWAP_PROB_CROWDED`` / ``SWAP_PROB_SPARSE`` (chosen by ``is_crowded``); ``type_probabilities`` assembles them, with
``good`` taking the remainder.

Each outcome is sampled by rejection: points drawn uniformly in angle and radius on a ring around a source
candidate, kept only if no other candidate is closer than the test distance, so that e.g. a "jitter" never lands
on somebody else's joint. Outcomes whose sampling produced nothing lose their probability, the rest are
renormalised.

Randomness: the reference drew from the global numpy RNG and Python's ``random``; here every draw comes from the
numpy ``Generator`` passed in, so a sample is reproducible from its seed and independent of worker layout.
Bit-identical streams to the reference are not a goal, only the same distribution. The sampling is reorganised for
speed (the reference took ~10-70 ms per pose, growing with the number of overlapping people, and was its data
loader's main cost) by steps that keep that distribution:

* all joints, error types and sample points are drawn as arrays; the joints in two batches (see synthesize_pose);
* a ring with no other candidate within reach keeps all its points, so it is not simulated: its survivor count is
  known and, if it is chosen, one fresh point is drawn on it;
* the other rings are simulated lazily (``_ContestedRings``): the type probabilities only need to know whether a
  type has any survivor (usually settled by the first 125 points of its ring; for miss, of the gt ring), exact
  survivor counts are only needed to weigh the several rings of the chosen type (miss, swap), and a uniform
  survivor of the points drawn so far has the law of a uniform survivor of the whole ring (they are i.i.d.);
* the reference pools ⌊S/4⌋ with-replacement draws from the S survivors of a miss ring around a non-gt candidate;
  here that ring gets pool weight ⌊S/4⌋ and then yields a uniform survivor, which is what each pooled draw is;
* a uniform pick uses one uniform, ``int(u·count)``.

One reference crash is resolved: when the only miss survivors come from non-gt rings with fewer than 4 each, the
reference's pool is empty and ``random.randrange(0)`` raises; here miss is then simply impossible for that joint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from hap3d.body.joints import COCO17

NUM_KPS = 17

# COCO per-keypoint OKS constants σ (COCO 17 order); a joint's error radii scale with 2σ·√area.
OKS_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0

# Left/right partners (COCO indices) that an "inv" error confuses.
SYMMETRIC_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
PARTNER = np.array([next((a + b - j for a, b in SYMMETRIC_PAIRS if j in (a, b)), -1) for j in range(NUM_KPS)])

ERROR_TYPES = ("jitter", "miss", "inv", "swap", "good")  # order of the columns of type_probabilities()

# OKS similarities bounding the error rings: good < d(0.85) <= jitter <= d(0.50) <= miss <= d(0.10).
KS_GOOD, KS_JITTER, KS_MISS = 0.85, 0.50, 0.10


def _per_joint(groups: dict[tuple[int, ...], float]) -> np.ndarray:
    """A (17,) table from {joint indices: probability}; every joint must be covered exactly once."""
    out = np.full(NUM_KPS, np.nan)
    for idx, p in groups.items():
        out[list(idx)] = p
    assert not np.isnan(out).any()
    return out


_FACE, _UPPER, _LOWER = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9, 10), (11, 12, 13, 14, 15, 16)
# jitter groups: nose/knees/ankles, eyes..wrists, hips; miss groups: face, shoulders/ankles, the rest
_JITTER_GROUPS = ((0, 13, 14, 15, 16), (1, 2, 3, 4, 5, 6, 7, 8, 9, 10), (11, 12))
_MISS_GROUPS = (_FACE, (5, 6, 15, 16), (7, 8, 9, 10, 11, 12, 13, 14))

# Per-joint prior probability of each error type. Poses with few valid joints (occluded, truncated people) get more
# jitter/miss; crowded ones (overlapping people) more swap. Tables keyed by an upper bound on num_valid are
# searched in order: the first bound >= num_valid applies.
JITTER_PROB: tuple[tuple[int, np.ndarray], ...] = (
    (10, _per_joint(dict(zip(_JITTER_GROUPS, (0.15, 0.20, 0.25))))),
    (NUM_KPS, _per_joint(dict(zip(_JITTER_GROUPS, (0.10, 0.15, 0.20))))),
)
MISS_PROB: tuple[tuple[int, np.ndarray], ...] = (
    (5, _per_joint(dict(zip(_MISS_GROUPS, (0.15, 0.20, 0.25))))),
    (10, _per_joint(dict(zip(_MISS_GROUPS, (0.10, 0.13, 0.15))))),
    (NUM_KPS, _per_joint(dict(zip(_MISS_GROUPS, (0.02, 0.05, 0.10))))),
)
INV_PROB = _per_joint({_FACE: 0.01, _UPPER: 0.03, _LOWER: 0.06})
SWAP_PROB_CROWDED = _per_joint({_FACE: 0.02, _UPPER: 0.15, _LOWER: 0.10})  # see is_crowded()
SWAP_PROB_SPARSE = _per_joint({_FACE: 0.01, _UPPER: 0.06, _LOWER: 0.03})

# Rejection sampling sizes of the reference (points per source candidate): jitter, inv and swap 500, miss 2000,
# good 125. They are counted here in units of 125 points so that every sampled point lives in one (units, 125) array.
_UNIT = 125
_UNITS_PER_SOURCE = np.array([4, 16, 4, 4, 1])  # in ERROR_TYPES order
_MISS, _SWAP = ERROR_TYPES.index("miss"), ERROR_TYPES.index("swap")


def is_crowded(num_valid: int, num_overlap: int) -> bool:
    """Whether the high swap table applies: few visible joints with any overlap, or many overlapping people."""
    return (num_valid <= 10 and num_overlap > 0) or (num_valid <= 15 and num_overlap >= 3)


def type_probabilities(num_valid: int, num_overlap: int) -> np.ndarray:
    """(17, 5) prior probabilities in ERROR_TYPES order; ``good`` takes the remainder. Read-only (cached)."""
    return _type_probabilities(num_valid, is_crowded(num_valid, num_overlap))


@lru_cache(maxsize=None)
def _type_probabilities(num_valid: int, crowded: bool) -> np.ndarray:
    jitter = next(t for bound, t in JITTER_PROB if num_valid <= bound)
    miss = next(t for bound, t in MISS_PROB if num_valid <= bound)
    swap = SWAP_PROB_CROWDED if crowded else SWAP_PROB_SPARSE
    table = np.stack([jitter, miss, INV_PROB, swap, 1.0 - (jitter + miss + INV_PROB + swap)], axis=1)
    table.flags.writeable = False
    return table


def oks_radius(ks: float | np.ndarray, area: float) -> np.ndarray:
    """Displacement at which each joint's OKS similarity equals ``ks``: sqrt(-2·area·(2σ)²·ln ks).

    (17,) for a scalar ``ks``, (17, K) for K similarities.
    """
    ks = np.asarray(ks, dtype=float)
    two_sigma = 2.0 * OKS_SIGMAS.reshape(-1, *([1] * ks.ndim))
    return np.sqrt(-2.0 * area * two_sigma**2 * np.log(ks))


def crop_box_area(tight_bbox_xywh: Sequence[float], img2bb_trans: np.ndarray) -> float:
    """Area of the tight box once mapped into the crop (side lengths of the transformed box; rotation-invariant)."""
    (a, b, _), (d, e, _) = np.asarray(img2bb_trans, dtype=float).tolist()
    w, h = float(tight_bbox_xywh[2]), float(tight_bbox_xywh[3])
    return abs(w) * math.hypot(a, d) * abs(h) * math.hypot(b, e)  # |T·(w, 0)| · |T·(0, h)|


def synthesize_pose(
    coco_joints: np.ndarray,
    tight_bbox_xywh: Sequence[float],
    near_joints: np.ndarray,
    num_overlap: int,
    img2bb_trans: np.ndarray,
    rng: np.random.Generator,
    reference_quirks: bool = True,
) -> np.ndarray:
    """Corrupt the 17 COCO joints (crop pixels; column 2 = valid) into a plausible detector output.

    ``near_joints`` (K, >=17, 3) are the overlapping people's joints in the same crop space (column 2 > 0 marks a
    usable joint); ``num_overlap`` their count as the dataset reports it (it selects the swap table); the error radii
    scale with the tight box's area once mapped by ``img2bb_trans``. All randomness comes from ``rng``. Returns
    (17, 3) float32 rows ``(x, y, 1)``, or ``(0, 0, 0)`` for a joint where no error type could be sampled.

    The reference walks j = 0..16 updating the pose in place; the only way an earlier result reaches a later joint is
    the ``inv`` candidate (the partner's position). So joints are drawn in two vectorised batches, first those whose
    partner comes later (or that have none), then those whose partner comes earlier, which is the same dependence.

    ``reference_quirks`` keeps two reference behaviours (docs/reference-differences.md R27, R28): the ``inv``
    candidate of a joint whose partner comes earlier is the partner's already-corrupted position, and when there is
    no ``inv`` candidate the swap sampling still skips and references the candidate in the inv slot (the first
    swap-inv one). ``False`` uses the partner's original position and ignores the inv slot when it is empty.
    """
    joints = np.asarray(coco_joints, dtype=np.float64)[:NUM_KPS]
    near = np.asarray(near_joints, dtype=np.float64)[:, :NUM_KPS]
    area = crop_box_area(tight_bbox_xywh, img2bb_trans)
    radii = oks_radius(np.array([KS_GOOD, KS_JITTER, KS_MISS]), area)  # (17, 3)
    valid = joints[:, 2] > 0
    prior = type_probabilities(int(valid.sum()), num_overlap)

    # Candidates per joint, padded to a common count: [gt, swap..., inv?, swap-inv...], the reference's order.
    # Built from every possible candidate with a presence mask, then compacted with a stable sort.
    has_partner = PARTNER >= 0
    partner = np.where(has_partner, PARTNER, 0)
    near_valid = near[:, :, 2] > 0
    has_inv = has_partner & valid[partner]
    every = np.concatenate(
        [joints[:, None, :2], near[:, :, :2].transpose(1, 0, 2), joints[partner, None, :2],
         near[:, partner, :2].transpose(1, 0, 2)], axis=1,
    )
    present = np.concatenate([np.ones((NUM_KPS, 1), bool), near_valid.T, has_inv[:, None],
                              near_valid[:, partner].T & has_partner[:, None]], axis=1)
    order = np.argsort(~present, axis=1, kind="stable")
    n_cands = present.sum(axis=1)
    order = order[:, : n_cands.max()]
    cands = np.take_along_axis(every, order[:, :, None], axis=1)
    cand_ok = np.take_along_axis(present, order, axis=1)
    n_swap = near_valid.sum(axis=0)
    inv_slot = np.where(has_inv, 1 + n_swap, -1)
    if reference_quirks:  # the inv slot index is used even when it holds the first swap-inv candidate
        swap_skip = np.where(1 + n_swap < n_cands, 1 + n_swap, -1)
    else:
        swap_skip = inv_slot

    synth = joints.astype(np.float32)
    inv_source = synth if reference_quirks else joints
    later = (PARTNER < 0) | (PARTNER > np.arange(NUM_KPS))
    for batch in (np.flatnonzero(later), np.flatnonzero(~later)):
        with_inv = batch[has_inv[batch]]
        cands[with_inv, inv_slot[with_inv]] = inv_source[PARTNER[with_inv], :2]
        width = int(n_cands[batch].max())
        synth[batch] = _sample_joints(
            cands[batch, :width], cand_ok[batch, :width], inv_slot[batch], swap_skip[batch], radii[batch],
            prior[batch], rng,
        )
    return synth


@lru_cache(maxsize=None)
def _group_template(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sampling groups of a joint with m candidate slots: jitter, miss per slot, inv, swap per slot 1.., good.

    Returns each group's kind (ERROR_TYPES index), its source slot (the inv column is filled per joint), and the
    (3, G) matrices mapping the radii [d85, d50, d10] to each group's inner and outer ring radius.
    """
    kind = np.repeat(np.arange(5), [1, m, 1, m - 1, 1])
    src = np.concatenate([[0], np.arange(m), [0], np.arange(1, m), [0]])
    inner = np.array([0, 1, -1, -1, -1])[kind]  # jitter [d85, d50), miss [d50, d10), inv/swap [0, d50), good [0, d85)
    outer = np.array([1, 2, 1, 1, 0])[kind]
    lo_of_radii = (np.arange(3)[:, None] == inner).astype(float)
    hi_of_radii = (np.arange(3)[:, None] == outer).astype(float)
    for a in (kind, src, lo_of_radii, hi_of_radii):
        a.flags.writeable = False
    return kind, src, lo_of_radii, hi_of_radii


def _sample_joints(
    cands: np.ndarray,
    cand_ok: np.ndarray,
    inv_slot: np.ndarray,
    swap_skip: np.ndarray,
    radii: np.ndarray,
    prior: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw the outcome of several independent joints; returns (J, 3) rows (x, y, 1), or zeros if nothing survives.

    ``cands`` (J, M, 2) hold each joint's candidates (``cand_ok`` marks the real ones), ``inv_slot`` / ``swap_skip``
    their inv slot (-1: none), ``radii`` (J, 3) the d(0.85), d(0.50), d(0.10) distances and ``prior`` (J, 5) the
    type probabilities.

    Samples come in groups: one source candidate, a ring of radii [lo, hi) around it, and the reference candidates
    its points must stay clear of (farther than the point's own radius, or than d(0.50) for miss). Each joint has the
    groups jitter, miss per candidate, inv, swap per source and good, laid out on a common template. Only groups with
    a reference within reach of their ring are simulated, and only as far as a decision needs (``_ContestedRings``);
    in the others every point survives, so their survivor count is known and a chosen point is drawn fresh.
    """
    n_joints, m = cand_ok.shape
    rows = np.arange(n_joints)
    slots = np.arange(m)
    kind, src_template, lo_of_radii, hi_of_radii = _group_template(m)
    inv_col, swap_cols = 1 + m, slice(2 + m, 1 + 2 * m)
    src = np.repeat(src_template[None], n_joints, axis=0)
    src[:, inv_col] = np.maximum(inv_slot, 0)
    group_ok = np.ones(src.shape, dtype=bool)
    group_ok[:, 1 : 1 + m] = cand_ok
    group_ok[:, inv_col] = inv_slot >= 0
    group_ok[:, swap_cols] = cand_ok[:, 1:] & (slots[1:] != swap_skip[:, None])
    r_lo, r_hi = radii @ lo_of_radii, radii @ hi_of_radii  # (J, G) ring radii
    clearance = np.where(kind == _MISS, radii[:, 1:2], r_hi)  # the largest distance a reference must keep

    # References: every other candidate, except for swap, which only avoids gt and the inv slot.
    is_swap = (kind == _SWAP)[None, :, None]
    refs = np.where(is_swap, (slots == 0) | (slots == swap_skip[:, None, None]), slots != src[:, :, None])
    refs &= cand_ok[:, None, :] & group_ok[:, :, None]
    source = cands[rows[:, None], src]  # (J, G, 2)
    offset = cands[:, None, :, :] - source[:, :, None, :]  # reference minus source
    dist2 = (offset**2).sum(axis=3)
    # a reference farther than hi + clearance from the source cannot reject any point of the ring
    reach = refs & (dist2 <= ((r_hi + clearance) ** 2)[:, :, None])
    contested = reach.any(axis=2)

    units = _UNITS_PER_SOURCE[kind]
    n_points = np.where(group_ok, units * _UNIT, 0)
    kind_onehot = kind[:, None] == np.arange(5)
    cj, cg = np.nonzero(contested)
    rings = _ContestedRings(kind[cg], units[cg], r_lo[cj, cg], r_hi[cj, cg], radii[cj, 1], reach[cj, cg],
                            offset[cj, cg], dist2[cj, cg])
    ring_of = np.full(contested.shape, -1)
    ring_of[cj, cg] = np.arange(len(cj))

    def known() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Survivors per group so far (exact once a ring is complete), the pool they give, and the open rings."""
        count = n_points.copy()
        count[cj, cg] = rings.survivors()
        pool = count.copy()
        pool[:, 2 : m + 1] //= 4  # the reference keeps a quarter of the miss survivors around non-gt candidates
        unfinished = np.zeros(contested.shape, dtype=bool)
        unfinished[cj, cg] = ~rings.complete()
        return count, pool, unfinished

    # Which types are possible: one row per contested ring usually settles it (for miss, of the gt ring only, which
    # holds most of the pool); otherwise finish that type's rings.
    rings.simulate(np.flatnonzero((cg < 2) | (cg > m)), rng, first_row_only=True)
    count, pool, unfinished = known()
    unsettled = (pool @ kind_onehot == 0) & (unfinished @ kind_onehot > 0)
    rings.simulate(ring_of[unfinished & unsettled[:, kind]], rng)
    count, pool, unfinished = known()
    weight = prior * (pool @ kind_onehot > 0)
    cum = np.cumsum(weight, axis=1)
    total = cum[:, -1]
    ok = total > 0
    u_kind, u_group, u_survivor, u_angle, u_radius = rng.random((5, n_joints))
    target = np.minimum(u_kind * total, np.nextafter(total, 0))  # strictly below total despite rounding
    chosen = np.minimum((cum <= target[:, None]).sum(axis=1), 4)

    # A type with several rings (miss, swap) weighs them by their exact pools: finish its open rings.
    in_kind = group_ok & (kind == chosen[:, None])
    several = ok & (in_kind.sum(axis=1) > 1)
    rings.simulate(ring_of[unfinished & in_kind & several[:, None]], rng)
    count, pool, _ = known()
    in_pool = np.where(in_kind, pool, 0)
    cum_pool = np.cumsum(in_pool, axis=1)
    elem = np.minimum((u_group * cum_pool[:, -1]).astype(int), cum_pool[:, -1] - 1)
    group = np.minimum((cum_pool <= elem[:, None]).sum(axis=1), len(kind) - 1)

    # A uniform survivor of the group: survivors are i.i.d., so a uniform simulated one (all, once the ring is
    # complete; else those of the rows that settled the type) has the right law; an uncontested ring draws afresh.
    lo, hi = r_lo[rows, group], r_hi[rows, group]
    r, angle = lo + (hi - lo) * u_radius, 2.0 * np.pi * u_angle
    out = np.zeros((n_joints, 3), dtype=np.float32)
    out[:, 0] = source[rows, group, 0] + r * np.cos(angle)
    out[:, 1] = source[rows, group, 1] + r * np.sin(angle)
    out[:, 2] = 1.0
    for j in np.flatnonzero(ok & contested[rows, group]):
        g = group[j]
        radius, cos, sin = rings.survivor(ring_of[j, g], int(u_survivor[j] * count[j, g]))
        out[j, :2] = source[j, g, 0] + radius * cos, source[j, g, 1] + radius * sin
    out[~ok] = 0.0
    return out


class _ContestedRings:
    """Sample points of the rings that have a reference within reach, simulated lazily in rows of _UNIT points.

    Only the rows a decision needs are drawn: usually the first row of each type's rings (for miss, of the gt ring)
    tells which error types are possible, and full survivor counts are only needed to weigh the rings of the chosen
    type (miss, swap).
    """

    def __init__(
        self,
        kind: np.ndarray,
        units: np.ndarray,
        r_lo: np.ndarray,
        r_hi: np.ndarray,
        d50: np.ndarray,
        reach: np.ndarray,
        offset: np.ndarray,
        dist2: np.ndarray,
    ) -> None:
        """Per ring: its kind, rows, radius range, d(0.50), references in reach (R, M) and their offsets/distances²."""
        self.row0 = np.cumsum(units) - units
        self.units = units
        self.owner = np.repeat(np.arange(len(units)), units)  # ring of every row
        shape = (len(self.owner), _UNIT)
        self.radius, self.cos, self.sin = (np.empty(shape, np.float32) for _ in range(3))
        self.alive = np.zeros(shape, dtype=bool)
        self.done = np.zeros(len(self.owner), dtype=bool)
        self.lo, self.width = r_lo.astype(np.float32), (r_hi - r_lo).astype(np.float32)
        self.is_miss, self.d50_sq = kind == _MISS, (d50**2).astype(np.float32)
        self.n_refs = reach.sum(axis=1)
        self.ref_order = np.argsort(~reach, axis=1, kind="stable")  # each ring's references in reach first
        self.d2 = np.where(reach, dist2, np.inf).astype(np.float32)  # inf: never rejects
        self.offset = offset.astype(np.float32)

    def simulate(self, rings: np.ndarray, rng: np.random.Generator, first_row_only: bool = False) -> None:
        """Draw the not yet drawn rows of these rings (only their first row with ``first_row_only``)."""
        if not len(rings):
            return
        n = np.ones_like(rings) if first_row_only else self.units[rings]
        rows = np.repeat(self.row0[rings], n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
        rows = rows[~self.done[rows]]
        if not len(rows):
            return
        own = self.owner[rows]
        u = rng.random((2, len(rows), _UNIT), dtype=np.float32)
        radius = self.lo[own, None] + self.width[own, None] * u[1]
        theta = np.float32(2.0 * np.pi) * u[0]
        cos, sin = np.cos(theta), np.sin(theta)
        # With p = source + r·e and off = c - source, |p - c|² = |off|² - 2r(e·off) + r². The point survives when
        # this exceeds clearance², i.e. when e·off < (|off|² + excess) / 2r, with excess = r² - d50² for miss and 0
        # otherwise (clearance = r). r = 0 gives inf or, for a reference on the source, nan (rejected), as required.
        excess = np.where(self.is_miss[own, None], radius * radius - self.d50_sq[own, None], np.float32(0))
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_2r = np.float32(0.5) / radius
        alive = np.ones(radius.shape, dtype=bool)
        proj, limit, clear = np.empty_like(radius), np.empty_like(radius), np.empty_like(alive)
        for k in range(int(self.n_refs[own].max())):
            ref = (own, self.ref_order[own, k])
            np.multiply(self.offset[ref][:, :1], cos, out=proj)
            np.multiply(self.offset[ref][:, 1:], sin, out=limit)
            proj += limit
            np.add(self.d2[ref][:, None], excess, out=limit)
            with np.errstate(invalid="ignore"):
                limit *= inv_2r
            alive &= np.less(proj, limit, out=clear)
        self.radius[rows], self.cos[rows], self.sin[rows], self.alive[rows] = radius, cos, sin, alive
        self.done[rows] = True

    def survivors(self) -> np.ndarray:
        """Surviving points drawn so far, per ring."""
        return np.add.reduceat(self.alive.sum(axis=1), self.row0) if len(self.row0) else np.zeros(0, int)

    def complete(self) -> np.ndarray:
        """Whether all of a ring's points have been drawn, per ring."""
        return np.logical_and.reduceat(self.done, self.row0) if len(self.row0) else np.zeros(0, bool)

    def survivor(self, ring: int, k: int) -> tuple[float, float, float]:
        """(radius, cos, sin) of the k-th surviving point drawn on a ring."""
        rows = slice(self.row0[ring], self.row0[ring] + self.units[ring])
        flat = np.flatnonzero(self.alive[rows])[k]
        row, col = self.row0[ring] + flat // _UNIT, flat % _UNIT
        return float(self.radius[row, col]), float(self.cos[row, col]), float(self.sin[row, col])


def replace_joints(
    dataset_joints: np.ndarray,
    synth_coco17: np.ndarray,
    dataset_joint_names: Sequence[str],
    replace_indices: Sequence[int],
) -> np.ndarray:
    """Copy of ``dataset_joints`` (J, 3) with x, y of the listed joints taken from the synthesised COCO17 pose.

    Joints are matched by name; the valid column is kept (the reference replaces x, y only). ``Pelvis`` is in some
    datasets' lists but is not a COCO17 joint, so PoseFix never moves it and it keeps its ground truth.
    """
    out = np.array(dataset_joints, copy=True)
    for i in replace_indices:
        name = dataset_joint_names[i]
        if name == "Pelvis":
            continue
        if name not in COCO17:
            raise ValueError(f"PoseFix can only replace COCO17 joints (or skip Pelvis), got {name!r}")
        out[i, :2] = synth_coco17[COCO17.index(name), :2]
    return out
