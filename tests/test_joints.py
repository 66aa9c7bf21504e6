"""Joint sets: name mappings the reference relies on, flips, conversions and the graph adjacency."""

import numpy as np
import pytest
import torch

from hap3d.body.joints import (
    CROWDPOSE_REFERENCE_FLIP_PAIRS,
    JOINT_SETS,
    SMPL30_TO_GRAPH15,
    convert_joints,
    get_joint_set,
    graph_adjacency,
    joint_mapping,
)


@pytest.mark.parametrize("name", sorted(JOINT_SETS))
def test_flip_pairs_swap_left_and_right(name):
    js = get_joint_set(name)
    for a, b in js.flip_pairs:
        assert js.joints[a][2:] == js.joints[b][2:] and {js.joints[a][:2], js.joints[b][:2]} == {"L_", "R_"}
    perm = js.flip_index()
    assert np.array_equal(perm[perm], np.arange(len(js)))
    assert all(0 <= i < len(js) and 0 <= j < len(js) for i, j in js.skeleton)


def test_reference_mappings():
    assert SMPL30_TO_GRAPH15.tolist() == [0, 1, 2, 4, 5, 7, 8, 12, 29, 16, 17, 18, 19, 20, 21]
    src, dst = joint_mapping("h36m17", "smpl30")
    order = dict(zip(src.tolist(), dst.tolist()))
    assert [order[i] for i in range(17)] == [0, 2, 5, 8, 1, 4, 7, 3, 12, 24, 29, 16, 18, 20, 17, 19, 21]
    muco = get_joint_set("muco21").joints
    assert {muco[i] for i in joint_mapping("muco21", "smpl30")[0]} == set(muco) - {"Thorax"}
    mpii = get_joint_set("mpii16").joints
    assert {mpii[i] for i in joint_mapping("mpii16", "smpl30")[0]} == set(mpii) - {"Thorax"}
    assert len(joint_mapping("openpose19", "smpl30")[0]) == 19 and len(joint_mapping("coco17", "smpl30")[0]) == 17
    assert get_joint_set("smpl30").flip_pairs == ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23), (25, 26), (27, 28))
    assert get_joint_set("h36m17").flip_pairs == ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))
    assert CROWDPOSE_REFERENCE_FLIP_PAIRS != get_joint_set("crowdpose14").flip_pairs


def test_convert_round_trip_numpy_and_torch():
    x = np.random.default_rng(0).standard_normal((2, 17, 3)).astype(np.float32)
    y = convert_joints(x, "coco17", "smpl30")
    assert y.shape == (2, 30, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(convert_joints(y, "smpl30", "coco17"), x)
    assert np.all(y[:, get_joint_set("smpl30").index("Pelvis")] == 0)
    t = torch.from_numpy(x)
    torch.testing.assert_close(convert_joints(convert_joints(t, "coco17", "smpl30", fill=-1.0), "smpl30", "coco17"), t)


def test_graph_adjacency_values():
    a = graph_adjacency()
    np.testing.assert_allclose(a, a.T)
    deg = np.array([4, 4, 4, 4, 4, 3, 3, 5, 2, 4, 4, 4, 4, 3, 3])
    np.testing.assert_allclose(np.diag(a), 1 / deg, rtol=1e-6)
    np.testing.assert_allclose(a[7, 8], 1 / np.sqrt(10), rtol=1e-6)
    np.testing.assert_allclose(a[3, 5], 1 / np.sqrt(12), rtol=1e-6)
    np.testing.assert_allclose(a[0, 7], 1 / np.sqrt(20), rtol=1e-6)
    assert (a > 0).sum() == 15 + 2 * (14 + 6)


def test_unknown_set_message():
    with pytest.raises(ValueError, match="unknown joint set 'coco99'.*smpl30"):
        get_joint_set("coco99")
