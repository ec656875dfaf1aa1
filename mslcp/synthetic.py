"""Procedural synthetic faces: aligned cartoon faces with a global layout and fine texture, drawn in torch."""
import math
import numbers

import torch


def _ellipse(x, y, a, b):
    """First-order signed distance to the ellipse x²/a² + y²/b² = 1 (negative inside).

    x (…,1,W) and y (…,H,1) broadcast (a, b scalars or columns): few ops touch full images."""
    x2, y2 = x * x, y * y
    return (x2 / a**2 + (y2 / b**2 - 1)) * torch.rsqrt(x2 * (4 / a**4) + (y2 * (4 / b**4) + 1e-8))


def _field(g, c, res, size):
    """(c,1,size,size) smooth unit-variance noise: white noise at res×res, Gaussian-interpolated."""
    z = torch.randn(c, 1, res, res, generator=g)
    if res == size:
        return z
    pos = (torch.arange(size) + 0.5) / size * res - 0.5
    A = torch.exp(-0.5 * ((pos[:, None] - torch.arange(res)) / 0.7) ** 2)
    A = A / A.square().sum(1, keepdim=True).sqrt()               # keep unit variance
    return A @ z @ A.T


def _bump(q):
    """Smooth bump of a squared radius q."""
    return (1 - q).clamp_(min=0) ** 2


def _faces(g, c, size):
    """One chunk of c faces (c,1,size,size), all randomness from generator g. U(lo, hi): a uniform per image; S: soft
    inside-mask of a signed distance; X (c,1,1,W), Y (c,1,H,1): the face frame (aligned faces: separable)."""
    p = iter(torch.rand(64, c, 1, 1, 1, generator=g))           # per-image uniforms in [0,1)
    U = lambda lo, hi: lo + (hi - lo) * next(p)
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    u, v = t.view(1, 1, 1, -1), t.view(1, 1, -1, 1)              # image coords in [-1,1]
    w = 1.2 / size + 0.004                                       # edge softness (anti-aliasing)
    S = lambda d: torch.sigmoid(d * (-1 / w))
    field = lambda div: _field(g, c, max(size // div, 2), size)
    m = 6 * w                                                    # margin where soft edges have faded
    span = lambda lo, hi: (max(int((lo - m + 1) * size / 2), 0), min(math.ceil((hi + m + 1) * size / 2), size))

    cx, cy, s = U(-0.05, 0.05), U(-0.05, 0.05), U(1.05, 1.25)
    X, Y = (u - cx) / s, (v - cy) / s
    lx, ly = torch.cos(a := U(0, 2 * math.pi)), torch.sin(a)     # lighting direction and strength
    gain = U(0.05, 0.35)
    light = gain * lx * u + (1 + gain * ly * v)
    img = U(0.1, 0.9) + U(-0.15, 0.15) * v + 0.06 * field(16)   # background: intensity, gradient, blotches
    img, hair, head, dark, warp = _hair(img, X, Y, light, U, S, field)
    fine = torch.randn(c, 1, size, size, generator=g)
    img, skin = _head(img, X, Y, light, gain, lx, ly, warp, fine, U, S, field, span(0.37, 1)[0])

    # inner features live in a fixed window: compute them there only
    (r0, r1), (c0, c1) = span(-0.52, 0.77), span(-0.6, 0.6)
    Xw, Yw, lw = X[..., c0:c1], Y[..., r0:r1, :], light[..., r0:r1, c0:c1]
    inner, ex, ey, ew = _eyes(img[..., r0:r1, c0:c1], Xw, Yw, lw, lx, ly, dark, skin, U, S, w)
    img[..., r0:r1, c0:c1] = _nose_and_mouth(inner, Xw, Yw, lx, gain, ey, U, S)

    # fringe over the forehead (hair in front of the face), sensor grain
    fy, fc, ft = U(-0.72, -0.42), U(0.0, 1.2), U(-0.25, 0.25)
    img = torch.lerp(img, hair, S(torch.maximum(Y - (fy + fc * X * X + ft * X), head)))
    return (img + 0.005 * fine).clamp_(0, 1)


def _hair(img, X, Y, light, U, S, field):
    """Hair behind the head (extent, length, darkness vary), coarse and fine strands -> img, hair, head, dark, warp."""
    dark = torch.where(U(0, 1) < 0.75, U(0.04, 0.35), U(0.45, 0.8))
    hw, htop, hlen = U(0.56, 0.72), U(0.72, 0.92), U(-0.15, 1.1)
    warp = field(8)
    dx, dy = X - U(-0.3, 0.3), Y + 1.8
    ang = dx * torch.rsqrt(dx * dx + dy * dy)
    strands = torch.sin(torch.addcmul(2 * warp, ang, U(25, 50)))                  # coarse locks
    strands += torch.sin(torch.addcmul(3 * warp, ang, U(1.6, 2.4) * img.shape[-1]))  # fine strands, ~3 px period
    hair = dark * light * (1 + 0.08 * strands + 0.08 * warp)
    head = _ellipse(X, Y + 0.12, hw, htop)
    long_hair = torch.maximum(X.abs() - hw * (1 + 0.2 * Y.clamp(min=0)), (Y - hlen).maximum(-0.3 - Y))
    return torch.lerp(img, hair, S(torch.minimum(head, long_hair))), hair, head, dark, warp


def _head(img, X, Y, light, gain, lx, ly, warp, fine, U, S, field, r):
    """Shoulders and neck (rows r:), the face oval (egg-shaped, shaded towards its rim, lit) -> (img, skin)."""
    skin = U(0.45, 0.85)
    grain = torch.addcmul(1 + 0.015 * field(4), fine, torch.tensor(0.015))
    Yb, band = Y[..., r:, :], img[..., r:, :]
    clothes = U(0.05, 0.9) * light[..., r:, :] * (1 + 0.05 * warp[..., r:, :])
    band = torch.lerp(band, clothes, S(_ellipse(X, Yb - 1.5, 1.15, 0.62)))
    img[..., r:, :] = torch.lerp(band, skin * 0.7 * light[..., r:, :], S(torch.maximum(X.abs() - 0.21, 0.4 - Yb)))
    rx, ry = U(0.42, 0.5), U(0.6, 0.68)
    q = (X / rx) ** 2 + (Y / ry) ** 2
    shade = torch.addcmul(gain * lx / 2 * X / rx + (1 + gain * ly / 2 * Y / ry), q, q, value=-0.2)
    return torch.lerp(img, skin * light * shade * grain, S(_ellipse(X, Y, rx * (1 - 0.15 * Y), ry))), skin


def _eyes(img, X, Y, light, lx, ly, dark, skin, U, S, w):
    """Eyes (shared size, openness, iris, gaze; catchlight; lids) and brows (dark as the hair) -> (img, ex, ey, ew)."""
    AX = X.abs()                                                  # mirror symmetry: one evaluation, two eyes
    ex, ey, ew = U(0.17, 0.22), U(-0.14, -0.05), U(0.085, 0.115)
    eh = ew * U(0.45, 0.7)
    img = img * (1 - 0.18 * _bump(((AX - ex) / (1.5 * ew)) ** 2 + ((Y - ey + 0.02) / (2.6 * eh)) ** 2))
    eye_d = _ellipse(AX - ex, Y - ey, ew, eh)
    eye = S(eye_d)
    img = torch.lerp(img, 0.85 * light, eye)
    ix, iy = X - torch.sign(X) * ex - U(-0.3, 0.3) * ew, Y - ey - U(-0.2, 0.2) * eh
    ir = eh * U(0.85, 1.05)
    d_iris = torch.sqrt(ix * ix + iy * iy) - ir
    img = torch.lerp(img, U(0.08, 0.5) * light, S(d_iris) * eye)
    img = torch.lerp(img, torch.tensor(0.03), S(d_iris + 0.55 * ir) * eye)
    glint = torch.sqrt((ix + 0.4 * ir * lx) ** 2 + (iy + 0.4 * ir * ly) ** 2) - 0.22 * ir
    img = torch.lerp(img, torch.tensor(0.95), 0.8 * S(glint) * eye)
    lid = _bump((eye_d / (0.8 * w + 0.012)) ** 2) * torch.sigmoid((ey - Y) / (0.3 * eh))
    img = img * (1 - 0.75 * lid)                                   # upper lid / lashes
    bx = AX - ex
    by, bc, bt, tilt = ey - U(0.1, 0.14), U(0.5, 3.0), U(0.012, 0.026), U(-0.25, 0.25)
    brow = torch.maximum((Y - by - (bc * bx * bx - tilt * bx)).abs() - bt, bx.abs() - ew * 1.3)
    return torch.lerp(img, (0.6 * dark + 0.2 * skin) * light, 0.85 * S(brow)), ex, ey, ew


def _nose_and_mouth(img, X, Y, lx, gain, ey, U, S):
    """The nose (bridge shadow away from the light, nostrils, tip) and the mouth (frown to smile, lips, open?)."""
    AX = X.abs()
    ny = U(0.14, 0.23)
    ym, hy = (ey + ny) / 2, (ny - ey) / 2 + 0.02
    bridge = _bump(((X + 0.05 * torch.sign(lx)) / 0.045) ** 2) * _bump(((Y - ym) / hy) ** 2)
    nostrils = S(_ellipse(AX - 0.05, Y - ny, 0.028, 0.014))
    tip = _bump((X / 0.063) ** 2 + ((Y - ny + 0.03) / 0.063) ** 2)
    img = img * (1 - (0.05 + 0.3 * gain) * bridge - 0.45 * nostrils + 0.1 * tip)
    my, mw, curv = U(0.35, 0.44), U(0.12, 0.19), U(-0.04, 0.09)
    xm = (X / mw).clamp(-1, 1)
    mline = my - curv * xm * xm
    opening = torch.where(U(0, 1) < 0.3, U(0.005, 0.04), torch.zeros_like(my)) * (1 - xm * xm)
    ends = AX - mw
    taper = 1 - 0.5 * xm * xm                                      # lips thin out towards the corners
    upper = torch.maximum((Y - (mline - 0.012 * taper)).abs() - 0.012 * taper, ends)
    lower = torch.maximum((Y - (mline + opening + 0.02 * taper)).abs() - 0.018 * taper, ends)
    img = img * (1 - U(0.15, 0.4) * S(torch.minimum(upper, lower)))
    gap = torch.maximum(torch.maximum(Y - (mline + opening), (mline - 0.002) - Y), ends + 0.01)
    return torch.lerp(img, torch.tensor(0.05), S(gap - 0.003))


def faces(n, size=64, seed=0):
    """(n,1,size,size) float32 in [0,1]: aligned cartoon faces with global layout and fine texture.

    Vectorised over images; generated in chunks from per-chunk seeds, so the first k images do not
    depend on n. `size` must be divisible by 8.
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 8 or size % 8:
        raise ValueError(f"synthetic.faces: size must be an int, a positive multiple of 8, got {size!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"synthetic.faces: n must be an int >= 0, got {n!r}")
    chunk = max(8, 2**19 // size**2)
    out = torch.empty(n, 1, size, size)
    for i, start in enumerate(range(0, n, chunk)):
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        out[start:start + chunk] = _faces(g, chunk, size)[: n - start]
    return out
