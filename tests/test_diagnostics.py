"""Diagnostics: each instrument checked against a property it must have (CKA(X, X) = 1, MMD(X, X) = 0, …)."""

import pytest
import torch

from crossprune.diagnostics import (
    effective_rank,
    linear_cka,
    mask_iou,
    mmd2_rbf,
    proxy_a_distance,
    spearman,
)


def gaussian(n: int, d: int, seed: int = 0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_cka_of_a_layer_with_itself_is_one():
    x = gaussian(200, 30)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x[:20], x[:20]) == pytest.approx(1.0, abs=1e-6)  # Gram path: fewer samples than features


@pytest.mark.parametrize("n", [200, 10])  # feature form and Gram form
def test_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(n):
    x, y = gaussian(n, 16), gaussian(n, 16, seed=1)
    y = y + x @ gaussian(16, 16, seed=2)  # related, so CKA is far from 0
    q, _ = torch.linalg.qr(gaussian(16, 16, seed=3))
    reference = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(reference, abs=1e-6)
    assert linear_cka(x, y @ q) == pytest.approx(reference, abs=1e-6)
    assert linear_cka(7.5 * x, y) == pytest.approx(reference, abs=1e-6)
    assert linear_cka(x, 0.01 * y) == pytest.approx(reference, abs=1e-6)


def test_cka_of_independent_noise_is_small():
    assert linear_cka(gaussian(500, 20), gaussian(500, 20, seed=1)) < 0.2


def test_cka_compares_layers_of_different_widths_and_shapes():
    x = gaussian(100, 8)
    wide = torch.cat([x, x @ gaussian(8, 56, seed=1)], dim=1).reshape(100, 4, 4, 4)  # conv-like, 64 features
    assert linear_cka(x, wide) == pytest.approx(linear_cka(wide, x), abs=1e-12)
    assert 0.5 < linear_cka(x, wide) <= 1.0


def test_cka_of_a_dead_layer_is_zero_not_nan():
    x = gaussian(50, 10)
    assert linear_cka(x, torch.zeros(50, 3)) == 0.0
    assert linear_cka(torch.full((50, 4), 0.1), x) == 0.0  # constant, not just zero


def test_mmd_of_a_sample_with_itself_is_zero():
    x = gaussian(300, 5)
    assert abs(mmd2_rbf(x, x.clone())) < 1e-9
    assert abs(mmd2_rbf(x, x.clone(), max_samples=100)) < 1e-9  # subsampled too


def test_mmd_grows_with_the_mean_shift():
    x = gaussian(300, 5)
    values = [mmd2_rbf(x, gaussian(300, 5, seed=1, shift=s)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and len(set(values)) == 4
    assert values[0] < 0.02 and values[-1] > 0.3


def test_mmd_subsampling_is_deterministic():
    x, y = gaussian(500, 4), gaussian(500, 4, seed=1, shift=0.3)
    first = mmd2_rbf(x, y, max_samples=200, seed=3)
    assert mmd2_rbf(x, y, max_samples=200, seed=3) == first
    assert mmd2_rbf(x, y, max_samples=200, seed=4) != first  # the seed does pick the rows


def test_mmd_of_all_identical_points_is_zero():
    assert mmd2_rbf(torch.ones(10, 3), torch.ones(8, 3)) == 0.0


def test_proxy_a_distance_is_near_zero_for_one_distribution():
    assert abs(proxy_a_distance(gaussian(1000, 5), gaussian(1000, 5, seed=1))) < 0.3


def test_proxy_a_distance_is_near_two_for_separated_gaussians():
    assert proxy_a_distance(gaussian(500, 5), gaussian(500, 5, seed=1, shift=5.0)) > 1.9


def test_effective_rank_of_rank_one_data_is_one():
    x = gaussian(300, 1) @ gaussian(1, 12, seed=1)
    assert effective_rank(x) == pytest.approx(1.0, abs=1e-6)


def test_effective_rank_of_isotropic_data_is_nearly_its_width():
    assert 7.0 < effective_rank(gaussian(2000, 8)) <= 8.0


def test_effective_rank_of_zeros_is_zero():
    assert effective_rank(torch.zeros(20, 5)) == 0.0


def mask(kept: list[int], n: int = 6) -> torch.Tensor:
    m = torch.zeros(n)
    m[kept] = 1.0
    return m


def test_mask_iou_of_identical_masks_is_one():
    a = {"w": mask([0, 3]), "v": mask([])}
    assert mask_iou(a, a) == (1.0, {"w": 1.0, "v": 1.0})  # "v": both empty counts as agreement


def test_mask_iou_of_disjoint_kept_sets_is_zero():
    assert mask_iou({"w": mask([0, 1])}, {"w": mask([2, 3])}) == (0.0, {"w": 0.0})


def test_mask_iou_partial_overlap_by_hand():
    a = {"w": mask([0, 1, 2]), "v": mask([0, 1, 2, 3]).reshape(2, 3)}
    b = {"w": mask([1, 2, 3]), "v": mask([0, 1]).reshape(2, 3)}
    overall, per_key = mask_iou(a, b)
    assert per_key == {"w": pytest.approx(2 / 4), "v": pytest.approx(2 / 4)}
    assert overall == pytest.approx((2 + 2) / (4 + 4))


def test_mask_iou_rejects_different_keys():
    with pytest.raises(ValueError, match="keys"):
        mask_iou({"w": mask([0])}, {"v": mask([0])})


def test_spearman_of_identical_and_reversed_scores():
    s = gaussian(50, 3).float()
    assert spearman(s, s) == pytest.approx(1.0)
    assert spearman(s, -s) == pytest.approx(-1.0)


def test_spearman_ignores_monotone_transforms():
    s = gaussian(100, 1)
    assert spearman(s, s.exp()) == pytest.approx(1.0)


def test_spearman_ranks_minus_infinity_lowest():
    a = torch.tensor([float("-inf"), 1.0, 2.0, 3.0, float("-inf")])
    b = torch.tensor([-9.0, 1.0, 2.0, 3.0, -9.0])
    assert spearman(a, b) == pytest.approx(1.0)
    assert spearman(a, -b) == pytest.approx(-1.0)


def test_spearman_of_constant_scores_is_never_nan():
    c = torch.zeros(5)
    assert spearman(c, c.clone()) == 1.0
    assert spearman(c, torch.arange(5.0)) == 0.0
