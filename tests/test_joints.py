"""Joint sets: the reference's name mappings and flip pairs, conversions and the RotationNet graph adjacency."""

import numpy as np
import pytest
import torch

from hap3d.body.joints import (
    CROWDPOSE_REFERENCE_FLIP_PAIRS,
    FIT_PARAM_INVALID_JOINTS,
    H36M_EVAL14,
    JOINT_SETS,
    SMPL30_FACE_VERTICES,
    SMPL30_TO_GRAPH15,
    convert_joints,
    get_joint_set,
    graph_adjacency,
    joint_mapping,
)

# Flip pairs exactly as the reference's joint sets list them (its dataset classes and RotationNet's graph); CrowdPose
# is deliberately corrected (docs/reference-differences.md R24, see below).
EXPECTED_FLIP_PAIRS = {
    "smpl30": (
        (1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23), (25, 26), (27, 28),
    ),  # fmt: skip
    "graph15": ((1, 2), (3, 4), (5, 6), (9, 10), (11, 12), (13, 14)),
    "h36m17": ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)),
    "muco21": ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (17, 18), (19, 20)),
    "coco17": ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    "mpii16": ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
}


def _is_lr_swap(a: str, b: str) -> bool:
    return {a[:2], b[:2]} == {"L_", "R_"} and a[2:] == b[2:]


def _is_mirrored(n: str, joints: tuple[str, ...]) -> bool:
    return ("R_" if n.startswith("L_") else "L_") + n[2:] in joints


def _to_dict(src: str, dst: str) -> dict[int, int]:
    si, di = joint_mapping(src, dst)
    return dict(zip(si.tolist(), di.tolist()))


@pytest.mark.parametrize("name", sorted(JOINT_SETS))
def test_flips_and_skeleton_are_consistent(name):
    js = get_joint_set(name)
    assert js.name == name and len(js) == js.num_joints == len(set(js.joints))
    for a, b in js.flip_pairs:
        assert _is_lr_swap(js.joints[a], js.joints[b])
    # every L_/R_ joint whose mirror is in the set is paired
    paired = {i for p in js.flip_pairs for i in p}
    assert paired == {i for i, n in enumerate(js.joints) if n[:2] in ("L_", "R_") and _is_mirrored(n, js.joints)}
    perm = js.flip_index()
    assert np.array_equal(perm[perm], np.arange(len(js)))
    assert all(0 <= i < len(js) and 0 <= j < len(js) and i != j for i, j in js.skeleton)
    assert len({frozenset(e) for e in js.skeleton}) == len(js.skeleton)
    assert js.joints[js.root] == ("Pelvis" if "Pelvis" in js.joints else js.joints[0])


@pytest.mark.parametrize("name", sorted(EXPECTED_FLIP_PAIRS))
def test_flip_pairs_as_spec(name):
    assert get_joint_set(name).flip_pairs == EXPECTED_FLIP_PAIRS[name]


def test_crowdpose_pairs_corrected_and_reference_kept():
    for name in ("crowdpose14", "crowdpose15"):
        assert get_joint_set(name).flip_pairs == ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))
    names = get_joint_set("crowdpose14").joints
    assert not all(_is_lr_swap(names[a], names[b]) for a, b in CROWDPOSE_REFERENCE_FLIP_PAIRS)
    assert all(0 <= i < 14 for p in CROWDPOSE_REFERENCE_FLIP_PAIRS for i in p)


def test_smpl_and_graph_skeletons():
    smpl24, smpl30 = get_joint_set("smpl24"), get_joint_set("smpl30")
    assert smpl30.joints[:24] == smpl24.joints
    assert smpl30.joints[24:] == ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "Head_top")
    assert smpl30.skeleton[:4] == ((0, 1), (1, 4), (4, 7), (7, 10)) and len(smpl30.skeleton) == 29
    # SMPL24 is SMPL's kinematic tree: SMPL30's body edges plus Neck-Head (which SMPL30 routes through the nose)
    body = {frozenset(e) for e in smpl30.skeleton if max(e) < 24} | {frozenset((12, 15))}
    assert {frozenset(e) for e in smpl24.skeleton} == body and len(smpl24.skeleton) == 23
    assert smpl24.flip_pairs == EXPECTED_FLIP_PAIRS["smpl30"][:9]
    g15 = get_joint_set("graph15")
    assert g15.skeleton == (
        (0, 1), (1, 3), (3, 5), (0, 2), (2, 4), (4, 6), (0, 7), (7, 8), (7, 9), (9, 11), (11, 13), (7, 10), (10, 12),
        (12, 14),
    )  # fmt: skip


def test_reference_mappings():
    assert SMPL30_TO_GRAPH15.tolist() == [0, 1, 2, 4, 5, 7, 8, 12, 29, 16, 17, 18, 19, 20, 21]
    h36m = _to_dict("h36m17", "smpl30")
    assert [h36m[i] for i in range(17)] == [0, 2, 5, 8, 1, 4, 7, 3, 12, 24, 29, 16, 18, 20, 17, 19, 21]
    smpl30 = get_joint_set("smpl30")
    missing_by_set = {"muco21": {"Thorax"}, "mpii16": {"Thorax"}}
    missing_by_set |= {name: set() for name in ("openpose19", "coco17", "coco19", "crowdpose15")}
    for name, missing in missing_by_set.items():
        js = get_joint_set(name)
        mapped = _to_dict(name, "smpl30")
        assert {js.joints[i] for i in mapped} == set(js.joints) - missing, name
        assert all(smpl30.joints[d] == js.joints[s] for s, d in mapped.items())
    muco = {get_joint_set("muco21").joints[s]: d for s, d in _to_dict("muco21", "smpl30").items()}
    named = ("Spine", "Head", "L_Hand", "R_Hand", "L_Toe", "R_Toe")
    assert [muco[n] for n in named] == [6, 15, 22, 23, 10, 11]
    assert _to_dict("openpose19", "smpl30")[1] == 12  # OpenPose Neck -> SMPL Neck


def test_constants():
    h36m = get_joint_set("h36m17").joints
    assert {h36m[i] for i in range(17)} - {h36m[i] for i in H36M_EVAL14} == {"Pelvis", "Torso", "Nose"}
    smpl = get_joint_set("smpl24")
    unsupervised = {f"{s}_{j}" for s in "LR" for j in ("Ankle", "Toe", "Wrist", "Hand")}
    assert {smpl.joints[i] for i in FIT_PARAM_INVALID_JOINTS} == unsupervised
    assert set(SMPL30_FACE_VERTICES) == set(get_joint_set("smpl30").joints[24:29])
    assert get_joint_set("muco21").root == 14 and get_joint_set("COCO18").index("Pelvis") == 17


def test_convert_round_trip_numpy():
    x = np.random.default_rng(0).standard_normal((2, 5, 17, 3)).astype(np.float32)
    y = convert_joints(x, "coco17", "smpl30", fill=-1.0)
    assert isinstance(y, np.ndarray) and y.shape == (2, 5, 30, 3) and y.dtype == np.float32
    assert np.all(y[..., get_joint_set("smpl30").index("Pelvis"), :] == -1.0)
    np.testing.assert_array_equal(convert_joints(y, "smpl30", "coco17"), x)
    assert convert_joints(x.astype(np.float64), "coco17", "smpl30").dtype == np.float64


def test_convert_round_trip_torch():
    t = torch.randn(4, 19, 3, dtype=torch.float64, requires_grad=True)
    y = convert_joints(t, "openpose19", "smpl30")
    assert isinstance(y, torch.Tensor) and y.shape == (4, 30, 3) and y.dtype == torch.float64 and y.device == t.device
    assert torch.all(y[:, 0] == t[:, 18]) and torch.all(y[:, 3] == 0)  # Pelvis moved; Torso unmatched
    back = convert_joints(y, "smpl30", "openpose19")
    torch.testing.assert_close(back, t)
    back.sum().backward()
    torch.testing.assert_close(t.grad, torch.ones_like(t))


def test_convert_rejects_wrong_joint_count():
    with pytest.raises(ValueError, match="expected 17 joints of 'coco17'"):
        convert_joints(np.zeros((18, 2)), "coco17", "smpl30")


def test_graph_adjacency_matches_spec():
    a = graph_adjacency()
    assert a.dtype == np.float32 and a.shape == (15, 15)
    expected = np.zeros((15, 15))
    diag = {0.25: (0, 1, 2, 3, 4, 9, 10, 11, 12), 1 / 3: (5, 6, 13, 14), 0.2: (7,), 0.5: (8,)}
    for value, idx in diag.items():
        expected[idx, idx] = value
    off = {
        0.25: ((0, 1), (0, 2), (1, 2), (1, 3), (2, 4), (3, 4), (9, 10), (9, 11), (10, 12), (11, 12)),
        1 / np.sqrt(12): ((3, 5), (4, 6), (11, 13), (12, 14)),
        1 / 3: ((5, 6), (13, 14)),
        1 / np.sqrt(20): ((0, 7), (7, 9), (7, 10)),
        1 / np.sqrt(10): ((7, 8),),
    }
    for value, pairs in off.items():
        for i, j in pairs:
            expected[i, j] = expected[j, i] = value
    np.testing.assert_allclose(a, expected, rtol=1e-6, atol=0)
    assert np.array_equal(a, expected.astype(np.float32))  # float64 maths, one cast
    np.testing.assert_array_equal((a > 0).sum(0), [4, 4, 4, 4, 4, 3, 3, 5, 2, 4, 4, 4, 4, 3, 3])


def test_unknown_set_message():
    assert get_joint_set("SMPL30") is JOINT_SETS["smpl30"]
    with pytest.raises(ValueError, match="unknown joint set 'coco99'; known: smpl24, smpl30, graph15"):
        get_joint_set("coco99")
    with pytest.raises(ValueError, match="'Thorax' is not in joint set 'coco17'"):
        get_joint_set("coco17").index("Thorax")
