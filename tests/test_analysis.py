"""mslcp.analysis against independent references: explicit matrices, the Wiener filter of a Gaussian prior in closed
form, central finite differences, and numpy norms."""
import numpy as np
import pytest
import torch

from mslcp import analysis, nets, toy


def _matrix_map(A, shape):
    """The linear denoiser y -> A y on images of `shape` (C,H,W)."""
    return lambda y: (y.flatten(1) @ A.T).view(len(y), *shape)


def _finite_differences(f, y, eps=1e-6):
    """Central differences, column l = (f(y + eps e_l) - f(y - eps e_l)) / 2 eps: the (d,d) Jacobian."""
    d = y.numel()
    E = torch.eye(d, dtype=y.dtype).view(d, *y.shape[1:])
    with torch.no_grad():
        return ((f(y + eps * E) - f(y - eps * E)) / (2 * eps)).flatten(1).T


def _small_net(bias=False, seed=0):
    torch.manual_seed(seed)
    net = nets.BFCNN(width=8, depth=4, rf=7, bias=bias).double()
    for bn in net.BN_layers:  # non-trivial gains (the init is near identity) and, with bias, non-zero shifts
        with torch.no_grad():
            (bn.weight if bias else bn.gammas).normal_(0, 1)
            if bias:
                bn.bias.normal_(0, 0.5)
                bn.running_mean.normal_(0, 0.1)
    return net.eval()


def test_jacobian_of_a_linear_map_is_its_matrix():
    A = torch.randn(12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(analysis.jacobian(_matrix_map(A, (3, 2, 2)), y), A)
    torch.testing.assert_close(analysis.jacobian(_matrix_map(A, (3, 2, 2)), y, chunk_size=5), A)
    with pytest.raises(ValueError, match="one image"):
        analysis.jacobian(_matrix_map(A, (3, 2, 2)), y.expand(2, -1, -1, -1))


def test_jacobian_of_the_gaussian_mmse_denoiser_is_the_wiener_filter():
    g = torch.Generator().manual_seed(1)
    B = torch.randn(16, 16, generator=g, dtype=torch.float64)
    C, sigma = B @ B.T / 16, 0.3
    D = toy.GaussianDenoiser(torch.zeros(1, 4, 4, dtype=torch.float64), C)
    y = torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64)
    J = analysis.jacobian(lambda v: D(v, sigma), y)
    torch.testing.assert_close(J, C @ torch.linalg.inv(C + sigma**2 * torch.eye(16, dtype=torch.float64)))
    lam = torch.linalg.eigvalsh((J + J.T) / 2)  # symmetric, eigenvalues λ/(λ+σ²) in [0, 1)
    torch.testing.assert_close(J, J.T)
    assert lam.min() >= -1e-12 and lam.max() < 1


@pytest.mark.parametrize("bias", [False, True])
def test_jacobian_and_rows_match_finite_differences(bias):
    net = _small_net(bias)
    y = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = _finite_differences(net, y)
    J = analysis.jacobian(net, y)
    torch.testing.assert_close(J, ref, atol=1e-6, rtol=1e-6)
    pixels = [(0, 0), (2, 3), (5, 1)]
    rows = analysis.jacobian_rows(net, y, pixels)
    assert rows.shape == (1, 3, 1, 6, 6)
    torch.testing.assert_close(rows[0].flatten(1), ref[[6 * i + j for i, j in pixels]], atol=1e-6, rtol=1e-6)
    # a bias-free net is locally linear, D(y) = J(y) y; biases add a term that J y misses
    Jy = (J @ y.flatten()).view_as(y)
    if bias:
        assert (Jy - net(y)).abs().max() > 1e-3
    else:
        torch.testing.assert_close(Jy, net(y).detach())


def test_jacobian_with_receptive_field():
    """The probing shortcut (net.rf = 7: 49 passes for a 10x12 image) against finite differences, and the true
    Jacobian's support: rows vanish more than rf // 2 pixels away."""
    net = _small_net(bias=True)
    y = torch.rand(1, 1, 10, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ref = _finite_differences(net, y)
    J = analysis.jacobian(net, y, rf=net.rf)
    torch.testing.assert_close(J, ref, atol=1e-6, rtol=1e-6)
    assert (ref[5 * 12 + 6].view(10, 12).abs() > 0).nonzero().amin(0).tolist() == [2, 3]  # row at (5,6): ±3
    torch.testing.assert_close(analysis.jacobian(net, y, rf=41), ref, atol=1e-6, rtol=1e-6)  # rf > image
    torch.testing.assert_close(analysis.jacobian(net, y, rf=8), ref, atol=1e-6, rtol=1e-6)  # even, too large
    two = nets.BFCNN(in_channels=2, out_channels=2, width=4, depth=3, rf=5).double().eval()  # channels mix
    y2 = torch.rand(1, 2, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(analysis.jacobian(two, y2, rf=5), _finite_differences(two, y2), atol=1e-6, rtol=1e-6)


def test_rows_of_a_batch():
    net = _small_net()
    y = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    rows = analysis.jacobian_rows(net, y, [(1, 4)])
    for b in range(2):
        torch.testing.assert_close(rows[b, 0].flatten(), analysis.jacobian(net, y[b:b + 1])[6 + 4])


def test_trace_estimate():
    g = torch.Generator().manual_seed(3)
    diag = torch.rand(50, generator=g, dtype=torch.float64)  # ±1 probes: vᵀ diag(a) v = Σ a exactly
    est, err = analysis.trace_estimate(_matrix_map(torch.diag(diag), (2, 5, 5)), torch.zeros(1, 2, 5, 5).double())
    assert est == pytest.approx(diag.sum().item(), rel=1e-12) and err == pytest.approx(0, abs=1e-12)
    A = torch.randn(50, 50, generator=g, dtype=torch.float64)
    est, err = analysis.trace_estimate(_matrix_map(A, (2, 5, 5)), torch.zeros(1, 2, 5, 5).double(), n=4000)
    assert abs(est - A.trace().item()) < 4 * err and err < 1.5  # Var = Σ_{k≠l} (A_kl² + A_kl A_lk) / n
    net = _small_net()
    y = torch.rand(1, 1, 6, 6, generator=g, dtype=torch.float64)
    est, err = analysis.trace_estimate(net, y, n=2000, seed=1)
    assert abs(est - _finite_differences(net, y).trace().item()) < 4 * err


def test_noise_level():
    g = torch.Generator().manual_seed(4)
    y = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    est = analysis.noise_level(y, 0 * y)  # D = 0: the whole image is residual
    np.testing.assert_allclose(est.numpy(), np.linalg.norm(y.numpy().reshape(3, -1), axis=1) / 8)
    # D projects onto the first k pixels and x lives there: the residual is the noise outside, ‖(I-P)z‖ σ / √d
    k, sigma = 24, 0.2
    keep = torch.zeros(64, dtype=torch.float64)
    keep[:k] = 1
    P = lambda v: v * keep.view(1, 1, 8, 8)
    x = P(torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64))
    z = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    ref = sigma * np.linalg.norm(z.numpy().reshape(3, -1)[:, k:], axis=1) / 8
    np.testing.assert_allclose(analysis.noise_level(x + sigma * z, P(x + sigma * z)).numpy(), ref)


def test_noise_level_of_the_mmse_denoiser():
    """Gaussian prior N(0, C): E‖y − D(y)‖² = σ⁴ tr (C + σ²I)⁻¹ = σ² (d − tr J), J the Wiener filter."""
    g = torch.Generator().manual_seed(6)
    B = torch.randn(16, 16, generator=g, dtype=torch.float64)
    C, sigma = B @ B.T / 16, 0.5
    D = toy.GaussianDenoiser(torch.zeros(16, dtype=torch.float64), C)
    x = D.mean + torch.randn(20000, 16, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(C).T
    y = (x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)).view(-1, 1, 4, 4)
    mean_square = (analysis.noise_level(y, D(y, sigma)) ** 2).mean().item() * 16
    W = C @ torch.linalg.inv(C + sigma**2 * torch.eye(16, dtype=torch.float64))
    assert mean_square == pytest.approx(sigma**2 * (16 - W.trace().item()), rel=0.02)


def test_energy_within_hand_made_rows():
    rows = torch.zeros(1, 2, 2, 9, 9, dtype=torch.float64)
    rows[0, 0, 0, 4, 4], rows[0, 0, 1, 4, 7] = 1.0, 2.0  # pixel (4, 4): energy 1 at distance 0, 4 at distance 3
    rows[0, 1, 0, 0, 0], rows[0, 1, 0, 2, 1] = 3.0, 4.0  # pixel (0, 0): energy 9 at 0, 16 at max(2, 1) = 2
    frac = analysis.energy_within(rows, [(4, 4), (0, 0)], [0, 1, 2, 3, 8])
    expected = [(0.2 + 0.36) / 2, (0.2 + 0.36) / 2, (0.2 + 1) / 2, 1.0, 1.0]
    np.testing.assert_allclose(frac.numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="K = len"):
        analysis.energy_within(rows, [(4, 4)], [0])
    with pytest.raises(ValueError, match="radii"):
        analysis.energy_within(rows, [(4, 4), (0, 0)], [1.5])
    with pytest.raises(ValueError, match="all zeros"):
        analysis.energy_within(torch.zeros(1, 1, 1, 3, 3), [(1, 1)], [0])


def test_energy_within_of_a_net_against_its_full_jacobian():
    net, y = _small_net(seed=2), torch.rand(2, 1, 15, 15, dtype=torch.float64)
    pixels = [(7, 7), (4, 10), (1, 2)]
    rows = analysis.jacobian_rows(net, y, pixels)  # (2, 3, 1, 15, 15)
    frac = analysis.energy_within(rows, pixels, range(6))
    ref = []  # numpy: rows of the full Jacobian, energy in the square of radius r around each pixel
    for b in range(2):
        J = analysis.jacobian(net, y[b:b + 1]).numpy().reshape(15, 15, 15, 15)
        ref.append([[(J[i, j, max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1] ** 2).sum() / (J[i, j] ** 2).sum()
                     for i, j in pixels] for r in range(6)])
    np.testing.assert_allclose(frac.numpy(), np.mean(ref, axis=(0, 2)), rtol=1e-10)
    assert frac[3] == pytest.approx(1.0, abs=1e-12) and frac[2] < 1 - 1e-6  # receptive field 7: radius 3


def test_conditional_locality_of_a_known_linear_map():
    # output pixel (i, k) of every band = 0.5 input (i, k) + 0.5 input (i, k - 1), periodically: energy 1/2 at
    # distance 0 and 1/2 at distance 1, except in column 0, where the second half comes from the far column
    cond = lambda low, d: 0.5 * d + 0.5 * torch.roll(d, 1, -1) + 0 * low.sum()
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    y = x + 0.1 * torch.randn(x.shape, dtype=torch.float64)
    e = analysis.conditional_locality(cond, x, y, 0, [(8, 8), (20, 12)], range(3))  # own pixels (4, 4), (10, 6)
    np.testing.assert_allclose(e.numpy(), [0.5, 1.0, 1.0], rtol=1e-12)
    e = analysis.conditional_locality(cond, x, y, 1, [(3, 0)], range(8))  # level 1: own pixel (0, 0) of 8x8
    np.testing.assert_allclose(e.numpy(), [0.5] * 7 + [1.0], rtol=1e-12)


def test_radius():
    curve = torch.tensor([0.2, 0.9, 0.95, 1.0], dtype=torch.float64)
    assert analysis.radius(curve, range(4)) == 2
    assert analysis.radius(curve, [0, 2, 4, 6], level=0.5) == 2
    with pytest.raises(ValueError, match="never reaches"):
        analysis.radius(curve[:2], range(2))
