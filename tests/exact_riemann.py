"""Exact solution of the single-class generalised ARZ Riemann problem with the triangular
fundamental diagram, written independently of lib/ for the tests.

    rho_t + (rho v)_x = 0,   (rho w)_t + (rho w v)_x = 0,   w = v + p(rho),
    p(rho) = v_f - V_e(rho) = max(0, v_f + W - W k_j / rho)   (V_e = min(v_f, W (k_j/rho - 1)))

On a curve of constant w the flux is Q_w(rho) = rho (w - p(rho)) = min(w rho, W k_j - (v_f + W - w) rho):
triangular, with its kink at the critical density k_c = W k_j / (v_f + W) for every w. Waves:
the 2-wave is a contact at speed v; the 1-wave keeps w and joins the left state L to the middle
state M (w_M = w_L, v_M = v_R, so p(rho_M) = w_L - v_R). Along Q_w the characteristic speed is w
in free flow (rho < k_c) and -(v_f + W - w) congested: a 1-wave is a shock (compressive,
rho_M > rho_L), a jump at one of those two speeds (both states on one branch), or, expanding
from a congested to a free state, a fan whose inside is the kink state k_c, between speeds
-(v_f + W - w) and w. When v_R >= w_L no congested M exists: the left traffic runs away at most
at w_L and leaves vacuum up to the contact at v_R.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GarzLaw:
    v_free: float  # m/s
    wave: float  # W, m/s
    rho_jam: float  # k_j, veh/m

    @property
    def rho_crit(self) -> float:
        return self.wave * self.rho_jam / (self.v_free + self.wave)

    def p(self, rho: float) -> float:
        if rho <= 0.0:
            return 0.0
        return max(0.0, self.v_free + self.wave - self.wave * self.rho_jam / rho)

    def rho_of_p(self, z: float) -> float:
        """The congested density with p = z > 0."""
        return self.wave * self.rho_jam / (self.v_free + self.wave - z)

    def flux(self, rho: float, w: float) -> float:
        return rho * max(w - self.p(rho), 0.0)


def solve(law: GarzLaw, left: tuple[float, float], right: tuple[float, float], xi: np.ndarray) -> np.ndarray:
    """Density at the similarity coordinates xi = x / t for left/right states (rho, v)."""
    rho_l, v_l = left
    rho_r, v_r = right
    xi = np.asarray(xi, dtype=np.float64)
    if rho_l == 0.0:
        return np.where(xi < v_r, 0.0, rho_r)
    w = v_l + law.p(rho_l)
    back = -(law.v_free + law.wave - w)  # congested characteristic speed on the w curve
    kc = law.rho_crit
    out = np.full_like(xi, rho_r)
    if rho_r == 0.0 or v_r >= w:  # runs away into vacuum: 1-wave from L to 0, vacuum up to v_r
        if rho_l > kc:  # fan at the kink: rho_l, then k_c between back and w
            middle = np.where(xi < back, rho_l, np.where(xi < w, kc, 0.0))
        else:
            middle = np.where(xi < w, rho_l, 0.0)
        return np.where(xi < max(v_r, w), middle, out)
    rho_m = law.rho_of_p(w - v_r)  # congested: p(rho_m) = w - v_r > 0
    if rho_m > rho_l:  # compressive 1-shock (Rankine-Hugoniot along the w curve)
        sigma = (law.flux(rho_m, w) - law.flux(rho_l, w)) / (rho_m - rho_l)
        middle = np.where(xi < sigma, rho_l, rho_m)
    else:  # both congested, expanding: a jump at the congested characteristic speed
        middle = np.where(xi < back, rho_l, rho_m)
    return np.where(xi < v_r, middle, out)


def cell_averages(
    law: GarzLaw, left: tuple[float, float], right: tuple[float, float], edges: np.ndarray, t: float,
    x0: float, samples: int = 16,
) -> np.ndarray:
    """Exact cell averages at time t of the problem with its jump at x0, cells between `edges`."""
    offsets = (np.arange(samples) + 0.5) / samples
    x = edges[:-1, None] + (edges[1:] - edges[:-1])[:, None] * offsets[None, :]
    return solve(law, left, right, ((x - x0) / t).ravel()).reshape(x.shape).mean(axis=1)
