"""Exact solution of the single-class ARZ Riemann problem, written independently of lib/ for the tests.

    rho_t + (rho v)_x = 0,   (rho w)_t + (rho w v)_x = 0,   w = v + p(rho),   p = K (rho/rho_jam)^gamma

Characteristic speeds: lambda_1 = v - rho p'(rho) = w - (gamma + 1) p(rho) (genuinely nonlinear;
w is constant across 1-waves) and lambda_2 = v (linearly degenerate: a contact, v constant across).
From the left state L to the right state R the solution is a 1-wave from L to the middle state M
with w_M = w_L and v_M = v_R, then a contact at speed v_R from M to R. The 1-wave is a shock when
rho_M > rho_L, a rarefaction otherwise; when v_R > w_L no M with rho >= 0 exists and the
rarefaction ends in vacuum, which the right state leaves behind at speed v_R.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ArzLaw:
    k_press: float  # K, m/s
    rho_jam: float  # veh/m
    gamma: int

    def p(self, rho: np.ndarray | float) -> np.ndarray | float:
        return self.k_press * (np.asarray(rho) / self.rho_jam) ** self.gamma

    def p_inverse(self, z: float) -> float:
        return self.rho_jam * (max(z, 0.0) / self.k_press) ** (1.0 / self.gamma)

    def fan_density(self, w: float, xi: np.ndarray) -> np.ndarray:
        """Inside a 1-rarefaction with invariant w: lambda_1(rho) = xi, i.e. (gamma+1) p = w - xi."""
        return np.array([self.p_inverse((w - x) / (self.gamma + 1)) for x in np.atleast_1d(xi)])


def solve(law: ArzLaw, left: tuple[float, float], right: tuple[float, float], xi: np.ndarray) -> np.ndarray:
    """Density at the similarity coordinates xi = x / t for left/right states (rho, v)."""
    rho_l, v_l = left
    rho_r, v_r = right
    xi = np.asarray(xi, dtype=np.float64)
    out = np.empty_like(xi)
    if rho_l == 0.0:
        return np.where(xi < v_r, 0.0, rho_r)
    w_l = v_l + float(law.p(rho_l))
    lam_l = w_l - (law.gamma + 1) * float(law.p(rho_l))
    if rho_r == 0.0 or v_r >= w_l:
        fan = (xi >= lam_l) & (xi <= w_l)
        out[:] = 0.0
        out[xi < lam_l] = rho_l
        out[fan] = law.fan_density(w_l, xi[fan])
        if rho_r > 0.0:
            out[xi > v_r] = rho_r
        return out
    rho_m = law.p_inverse(w_l - v_r)
    if abs(rho_m - rho_l) <= 1e-12 * law.rho_jam:  # no 1-wave: a contact alone (avoids 0/0 below)
        rho_m = rho_l
    out[:] = rho_r
    if rho_m > rho_l:
        sigma = (rho_m * v_r - rho_l * v_l) / (rho_m - rho_l)
        out[xi < v_r] = rho_m
        out[xi < sigma] = rho_l
        return out
    lam_m = w_l - (law.gamma + 1) * float(law.p(rho_m))
    fan = (xi >= lam_l) & (xi <= lam_m)
    out[xi < v_r] = rho_m
    out[fan] = law.fan_density(w_l, xi[fan])
    out[xi < lam_l] = rho_l
    return out


def cell_averages(
    law: ArzLaw, left: tuple[float, float], right: tuple[float, float], edges: np.ndarray, t: float,
    x0: float, samples: int = 16,
) -> np.ndarray:
    """Exact cell averages at time t of the problem with its jump at x0, cells between `edges`."""
    offsets = (np.arange(samples) + 0.5) / samples
    x = edges[:-1, None] + (edges[1:] - edges[:-1])[:, None] * offsets[None, :]
    return solve(law, left, right, ((x - x0) / t).ravel()).reshape(x.shape).mean(axis=1)
