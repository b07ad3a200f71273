"""Per-cell physics of the two-class ARZ model, written once for both backends.

Every function here is plain Python on scalars and array elements. `compile_for(decorator)`
returns a namespace of the same functions compiled by `decorator` (numba.njit(forceinline=True)
for the CPU kernel in lib/sim/cpu.py, numba.cuda.jit(device=True) for lib/sim/cuda.py), with each
function's calls to the others bound to the compiled versions. So the CPU and CUDA backends run
the very same arithmetic, and the tests of one hold for the other.

Classes: k = 0 motorcycles (m), k = 1 cars (c). State per class and cell: density rho_k (veh/m)
and y_k = rho_k * w_k with w_k = v_k + p_k (m/s). A motorcycle takes eps_m of a car's space:
the space density sigma = eps_m rho_m + rho_c never exceeds the jam density k_j (per cell, from its
lanes and the jam spacing). Each class sees an effective density r_m = eps_m rho_m + alpha rho_c
(motorcycles filter past cars), r_c = sigma. Equilibrium: the triangular fundamental diagram of the
link's free speed v_f, jam density k_j and congested wave speed W, V_e(r) = min(v_f, W (k_j / r - 1)),
and the generalised ARZ pressure p(r) = v_f - V_e(r) (0 in free flow). Derived in docs/model.md.

Stage functions (`eval_cell`, `interior_flux`, `junction_flow` and its passes, `entry_flow`,
`exit_flow`, `update_cell`) do the work of one cell (or node, movement, entry, exit) for one
scenario `s`; the CPU kernel loops over them with the scenarios innermost, the CUDA kernels map
one thread to each (index, scenario). Array layouts: cell arrays are [class][cell][scenario], link
arrays [class][link][scenario] (on the CPU, "scenario" is the lane within a chunk).

The disk cache of the compiled kernels is lib/sim/kernel_cache.py.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- scalar model
#
# The hot functions are branch-free: both sides of a choice are computed (with denominators kept
# away from 0 by TINY) and a conditional expression picks one, which LLVM turns into a select.
# An `if` that returns early, or a sum updated inside an `if`, stops LLVM from vectorising the
# CPU kernel's loop over scenarios (measured: the relaxation ran 6.8x faster per scenario
# once branch-free). The value picked is the one the branchy form computed, (denominators below TINY aside).

TINY = 1e-300  # a denominator floor: only ever used where the other branch is picked at 0

# Every constant of the arithmetic below is one of these names, never a literal. Why: numba types a
# Python float literal as float64, so one literal in a float32 kernel promotes its expression to
# float64 arithmetic. `compile_for(decorator, real)` rebinds the names to `real` scalars (numba
# types a global numpy scalar by its dtype); compiled without `real` (the CPU, CUDA's float64) they
# are these Python floats, so the float64 code is what the literals compiled to.
ZERO = 0.0
HALF = 0.5
ONE = 1.0
TWO = 2.0
Q_FLOOR = 1e-9  # veh/s: the opposing flow's floor in `permitted_capacity`
BIG = 1e300  # "no exit yet" in the node model's search for the most restrictive exit
# float32 keeps the roles of TINY and BIG within its range (about 1e-38 to 3e38)
FLOAT32_EXTREMES = {"TINY": 1e-30, "BIG": 1e30}


def constants(real: Any) -> dict[str, Any]:
    """The arithmetic's constants as `real` scalars (numpy's float32 or float64)."""
    names = {"ZERO": ZERO, "HALF": HALF, "ONE": ONE, "TWO": TWO, "Q_FLOOR": Q_FLOOR, "TINY": TINY, "BIG": BIG}
    if real == np.float32:
        names.update(FLOAT32_EXTREMES)
    return {name: real(value) for name, value in names.items()}


def effective_density(rho_m: float, rho_c: float, k: int, alpha: float, eps_m: float) -> float:
    """The density class k reacts to: motorcycles weigh cars by alpha (they filter), cars see the
    space density (a motorcycle counts eps_m of a car)."""
    if k == 0:
        return eps_m * rho_m + alpha * rho_c
    return eps_m * rho_m + rho_c


def pressure(r: float, rho_jam: float, v_free: float, wave: float) -> float:
    """p(r) = v_f - V_e(r) = max(0, v_f + W - W k_j / r), m/s: 0 up to the critical density, with
    V_e(r) = min(v_f, W (k_j / r - 1)) the triangular fundamental diagram's speed."""
    return max(v_free + wave - wave * rho_jam / max(r, TINY), ZERO)


def critical_density(rho_jam: float, v_free: float, wave: float) -> float:
    """k_c = W k_j / (v_f + W): the argmax of every curve Q_w(r) = r (w - p(r)) with w < v_f + W."""
    return wave * rho_jam / (v_free + wave)


def curve_flow(r: float, w: float, rho_jam: float, v_free: float, wave: float) -> float:
    """Q_w(r) = r * v on the curve of constant w, with v = w - p(r) floored at 0."""
    return r * max(w - pressure(r, rho_jam, v_free, wave), ZERO)


def class_demand(rho_k: float, r: float, w: float, rho_jam: float, v_free: float, wave: float) -> float:
    """Sending flow of class k (veh/s): its share rho_k/r of the demand D_w(r) of its curve.

    D_w(r) = Q_w(r) = r w below the critical density k_c, Q_w(k_c) = k_c w above. Bounded by
    rho_k * w, which with the CFL condition keeps densities non-negative.
    """
    rc = critical_density(rho_jam, v_free, wave)
    free = rho_k * max(w - pressure(r, rho_jam, v_free, wave), ZERO)
    congested = rho_k / max(r, TINY) * rc * w
    return free if r <= rc else congested


def class_supply(
    w_in: float, phi_in: float, v_down: float, rho_jam: float, v_free: float, wave: float
) -> float:
    """Receiving flow for class k (veh/s) of a cell whose class-k speed is v_down.

    The Riemann intermediate state keeps the incoming w_in and the downstream speed:
    p(r_M) = w_in - v_down, r_M = W k_j / (v_f + W - (w_in - v_down)) (free flow, where p = 0,
    when w_in <= v_down). Supply = Q_w_in(max(r_M, k_c)), times the class share phi_in = rho_k / r_k
    of the incoming traffic. Single class, this is the exact Godunov flux of ARZ: min(demand,
    supply) (Lebacque, Mammar, Haj-Salem 2007).
    """
    z = max(w_in - v_down, ZERO)
    r_mid = wave * rho_jam / max(v_free + wave - z, TINY) if z > ZERO else ZERO
    rc = critical_density(rho_jam, v_free, wave)
    return phi_in * curve_flow(max(r_mid, rc), w_in, rho_jam, v_free, wave)


def space_supply(sigma: float, rho_jam: float, c_bound: float) -> float:
    """Space inflow a cell can take (car equivalents/s): c_bound (k_j - sigma). With
    c_bound dt/dx <= 1 the space density cannot pass k_j, whatever the two classes do."""
    return c_bound * max(rho_jam - sigma, ZERO)


def limit_factors(
    d_m: float, d_c: float, s_m: float, s_c: float, cap: float, eps_m: float
) -> tuple[float, float]:
    """Fractions of the class demands d_k that pass: min(1, s_k / d_k) per class, then both
    scaled down together so the space they take (eps_m per motorcycle) fits `cap` (shares
    proportional to demand). Every interface, entry and exit goes through this one rule."""
    f_m = ONE if d_m <= s_m else max(s_m, ZERO) / max(d_m, TINY)
    f_c = ONE if d_c <= s_c else max(s_c, ZERO) / max(d_c, TINY)
    total = eps_m * f_m * d_m + f_c * d_c
    g = cap / max(total, TINY) if total > cap else ONE
    return f_m * g, f_c * g


def relaxed_y(rho: float, y: float, p: float, v_eq: float, decay: float) -> float:
    """Exact relaxation of v toward V_e over one step at fixed rho: v' = V_e + (v - V_e) e^{-dt/tau}."""
    v = y / max(rho, TINY) - p
    relaxed = rho * (v_eq + (v - v_eq) * decay + p)
    return relaxed if rho > ZERO else y


# ----------------------------------------------------------------------------- stage functions


def eval_cell(i, s, rho, y, cell_rj, cell_vf, wave, alpha, eps_m, eps, dem, wv, vel, phi):  # noqa: ANN001
    """Per class: w, speed, demand and class share phi = rho_k / r_k of cell i, scenario s.

    A class absent from the cell (rho_k <= eps) is given its equilibrium w (= v_f), so that the
    supply it offers follows the other class's density instead of an undefined y/rho.
    """
    for k in range(2):
        rk = rho[k, i, s]
        w, p, r = class_w(k, i, s, rho, y, cell_rj, cell_vf, wave, alpha, eps_m, eps)
        wv[k, i, s] = w
        vel[k, i, s] = max(w - p, ZERO)
        dem[k, i, s] = class_demand(rk, r, w, cell_rj[i], cell_vf[i], wave)
        phi[k, i, s] = rk / max(r, TINY) if r > eps else ZERO


def class_w(k, i, s, rho, y, cell_rj, cell_vf, wave, alpha, eps_m, eps):  # noqa: ANN001
    """(w, p, perceived density) of class k in cell i, scenario s; an absent class (rho_k <= eps)
    gets its equilibrium w, v_f (V_e + p = v_f at every density)."""
    r = effective_density(rho[0, i, s], rho[1, i, s], k, alpha, eps_m)
    p = pressure(r, cell_rj[i], cell_vf[i], wave)
    w_own = y[k, i, s] / max(rho[k, i, s], TINY)
    return (w_own if rho[k, i, s] > eps else cell_vf[i]), p, r


def interior_flux(i, s, rho, cell_rj, cell_vf, wave, eps_m, c_bound, dem, wv, vel, phi, gout,
                  gyout):  # noqa: ANN001
    """Flux from cell i to cell i + 1 of the same link: per-class demand against supply (docs/model.md)."""
    j = i + 1
    rj = cell_rj[j]
    vf = cell_vf[j]
    s_m = class_supply(wv[0, i, s], phi[0, i, s], vel[0, j, s], rj, vf, wave)
    s_c = class_supply(wv[1, i, s], phi[1, i, s], vel[1, j, s], rj, vf, wave)
    cap = space_supply(eps_m * rho[0, j, s] + rho[1, j, s], rj, c_bound)
    f_m, f_c = limit_factors(dem[0, i, s], dem[1, i, s], s_m, s_c, cap, eps_m)
    gout[0, i, s] = dem[0, i, s] * f_m
    gout[1, i, s] = dem[1, i, s] * f_c
    gyout[0, i, s] = gout[0, i, s] * wv[0, i, s]
    gyout[1, i, s] = gout[1, i, s] * wv[1, i, s]


def movement_gate(m, s, t_local, mov_signal, mov_phase, sig_phase, sig_amber):  # noqa: ANN001
    """1.0 when movement m may flow in scenario s at time t_local into the advance, else 0.0.

    Phase -1 always flows; otherwise only in its signal's phase, and never during the amber.
    Branch-free (`&`, `|`): an unsignalised movement reads signal row 0, so the signal arrays
    always have at least one row."""
    ph = mov_phase[m]
    g = max(mov_signal[m], 0)
    green = (sig_phase[g, s] == ph) & (t_local >= sig_amber[g, s])
    return ONE if (ph < 0) | green else ZERO


def permitted_capacity(q_opp, t_gap, t_follow):  # noqa: ANN001
    """Capacity (veh/s) of a permitted left turn crossing an opposing flow q_opp (veh/s):
    q e^{-q t_c} / (1 - e^{-q t_f}) (HCM 2000, permitted left turns; 1 / t_f with no opposing
    traffic). q_opp is floored at 1e-9 veh/s, where the formula is 1/t_f to 1e-9."""
    q = max(q_opp, Q_FLOOR)
    return q * math.exp(-q * t_gap) / -math.expm1(-q * t_follow)


def junction_open(q, s, jn_out_link, sd, sdw, sdp):  # noqa: ANN001
    """Clear the demand sums of outgoing slot q (one link leaving a junction)."""
    lk = jn_out_link[q]
    for k in range(2):
        sd[k, lk, s] = ZERO
        sdw[k, lk, s] = ZERO
        sdp[k, lk, s] = ZERO


def stream_open(u, s, st_h):  # noqa: ANN001
    """Stream u (one FIFO queue of an approach) starts the node model unrestricted."""
    st_h[u, s] = ONE


def movement_limit(
    m, s, t_local, dem, mov_in, mov_ratio, mov_signal, mov_phase, mov_stream, mov_yield, mov_yield_share,
    sig_phase, sig_amber, link_first, t_gap, t_follow, gout, gyout, st_h,
):  # noqa: ANN001
    """Clear the outflow of movement m's incoming cell, and restrict its stream's share of the
    approach demand by the movement's signal gate and, for a permitted left turn, by its gap
    capacity against the opposing through and right demand. Under strict FIFO one movement that
    cannot go holds its whole stream (docs/model.md)."""
    last = link_first[mov_in[m] + 1] - 1
    for k in range(2):
        gout[k, last, s] = ZERO
        gyout[k, last, s] = ZERO
    gate = movement_gate(m, s, t_local, mov_signal, mov_phase, sig_phase, sig_amber)
    opp = mov_yield[m]
    opp_last = link_first[max(opp, 0) + 1] - 1
    q_opp = mov_yield_share[m] * (dem[0, opp_last, s] + dem[1, opp_last, s])
    want = mov_ratio[m] * (dem[0, last, s] + dem[1, last, s])
    cap = permitted_capacity(q_opp, t_gap, t_follow)
    gap = min(ONE, cap / max(want, TINY)) if opp >= 0 else ONE
    u = mov_stream[m]
    st_h[u, s] = min(st_h[u, s], gate * gap)


def movement_demand(m, s, dem, wv, phi, cell_vf, mov_in, mov_out, mov_ratio, mov_stream, link_first, st_h, sd,
                    sdw, sdp):  # noqa: ANN001
    """Add movement m's demand (fraction x its stream's share x class demand of its incoming cell)
    and its demand-weighted w (clamped to the outgoing link's v_f, `entering_w`) and phi to the
    sums of its outgoing link."""
    share = mov_ratio[m] * st_h[mov_stream[m], s]
    last = link_first[mov_in[m] + 1] - 1
    lk = mov_out[m]
    vf_out = cell_vf[link_first[lk]]
    for k in range(2):
        d = share * dem[k, last, s]
        sd[k, lk, s] += d
        sdw[k, lk, s] += d * entering_w(wv[k, last, s], vf_out)
        sdp[k, lk, s] += d * phi[k, last, s]


def entering_w(w_in, vf_out):  # noqa: ANN001
    """w of a vehicle entering a link: min(w_in, the link's v_f). The largest w on a link is its
    v_f (the equilibrium w there, v = w - p <= w), so no vehicle exceeds the new link's free speed;
    a lower w is kept, and so is ARZ's lag in reaching the new equilibrium (docs/model.md)."""
    return min(w_in, vf_out)


def outgoing_supply(q, s, rho, cell_rj, cell_vf, wave, eps_m, c_bound, vel, jn_out_link, link_first, sd, sdw,
                    sdp, rsup):  # noqa: ANN001
    """Receiving flow (veh/s) of outgoing slot q for the node model: its first cell's class supplies
    for the flux-weighted incoming w and phi, at the class mix of the demand it is offered, and its
    space supply: R = min(space D / (eps_m D_m + D_c), S_k D / D_k over the classes offered)."""
    lk = jn_out_link[q]
    first = link_first[lk]
    rj = cell_rj[first]
    vf = cell_vf[first]
    d_m = sd[0, lk, s]
    d_c = sd[1, lk, s]
    s_m = class_supply(sdw[0, lk, s] / max(d_m, TINY), sdp[0, lk, s] / max(d_m, TINY), vel[0, first, s], rj,
                       vf, wave)
    s_c = class_supply(sdw[1, lk, s] / max(d_c, TINY), sdp[1, lk, s] / max(d_c, TINY), vel[1, first, s], rj,
                       vf, wave)
    total = d_m + d_c
    cap = space_supply(eps_m * rho[0, first, s] + rho[1, first, s], rj, c_bound)
    cap_veh = cap * total / max(eps_m * d_m + d_c, TINY)
    lim_m = s_m * (total / max(d_m, TINY)) if d_m > ZERO else cap_veh
    lim_c = s_c * (total / max(d_c, TINY)) if d_c > ZERO else cap_veh
    rsup[lk, s] = min(cap_veh, min(lim_m, lim_c))


def stream_demand(u, s, dem, st_link, link_first, st_h):  # noqa: ANN001
    """Sending flow (veh/s, both classes) stream u offers: its share of its approach's demand."""
    last = link_first[st_link[u] + 1] - 1
    return st_h[u, s] * (dem[0, last, s] + dem[1, last, s])


def node_model(
    n, s, dem, jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_out, mov_ratio, mov_stream, st_link,
    st_cap, link_first, st_h, st_q, rsup, rres,
):  # noqa: ANN001
    """Flows of junction n's streams: the general first-order node model of Tampere, Corthout,
    Cattrysse & Immers (2011) for unsignalised nodes, with capacity-proportional priorities.

    Each stream u (sending flow S_u, capacity C_u) sends f_uj q_u to each exit j (fractions f).
    Repeat until every stream is fixed: for each exit still fed by undetermined streams,
    a_j = residual supply / sum of f_uj C_u over them; at the most restrictive exit j*, every
    undetermined stream with S_u <= a_j* C_u is demand-constrained and sends S_u; if there is none,
    the streams feeding j* are supply-constrained and send a_j* C_u. Turning fractions are kept
    (strict FIFO per stream), no exit gets more than its supply, and each stream sends the most
    it can under those rules (invariance principle). Leaves in st_h each stream's share
    q_u / (approach demand)."""
    m0 = jn_mov_ptr[n]
    m1 = jn_mov_ptr[n + 1]
    u0 = jn_st_ptr[n]
    u1 = jn_st_ptr[n + 1]
    for u in range(u0, u1):
        sending = stream_demand(u, s, dem, st_link, link_first, st_h)
        st_q[u, s] = sending if sending <= ZERO else -ONE  # -1: not determined yet
    for _ in range(u1 - u0):
        for q in range(jn_out_ptr[n], jn_out_ptr[n + 1]):
            rres[jn_out_link[q], s] = rsup[jn_out_link[q], s]
        for m in range(m0, m1):
            fixed = st_q[mov_stream[m], s]
            if fixed > ZERO:
                rres[mov_out[m], s] -= mov_ratio[m] * fixed
        best = BIG
        j_best = -1
        for q in range(jn_out_ptr[n], jn_out_ptr[n + 1]):
            lk = jn_out_link[q]
            weight = ZERO
            for m in range(m0, m1):
                if mov_out[m] == lk and st_q[mov_stream[m], s] < ZERO:
                    weight += mov_ratio[m] * st_cap[mov_stream[m]]
            if weight > ZERO:
                a = max(rres[lk, s], ZERO) / weight
                if a < best:
                    best = a
                    j_best = lk
        if j_best < 0:
            break
        constrained_by_demand = False
        for u in range(u0, u1):
            if st_q[u, s] < ZERO:
                sending = stream_demand(u, s, dem, st_link, link_first, st_h)
                if sending <= best * st_cap[u]:
                    st_q[u, s] = sending
                    constrained_by_demand = True
        if not constrained_by_demand:
            for m in range(m0, m1):
                u = mov_stream[m]
                if mov_out[m] == j_best and st_q[u, s] < ZERO:
                    st_q[u, s] = best * st_cap[u]
    for u in range(u0, u1):
        last = link_first[st_link[u] + 1] - 1
        total = dem[0, last, s] + dem[1, last, s]
        st_h[u, s] = max(st_q[u, s], ZERO) / total if total > ZERO else ZERO


def jammed_length(lk, s, rho, cell_rj, cell_vf, cell_dx, wave, eps_m, link_first):  # noqa: ANN001
    """Length (m) of link lk's standing queue at its stop line, all lanes at jam: from the last
    cell back while cells are congested, each counting its jammed share
    z = (sigma - k_c) / (k_j - k_c) of its length (a cell at k_c discharges, one at k_j stands)."""
    length = ZERO
    alive = ONE
    for back in range(link_first[lk + 1] - link_first[lk]):
        i = link_first[lk + 1] - 1 - back
        rj = cell_rj[i]
        rc = critical_density(rj, cell_vf[i], wave)
        z = min(max(eps_m * rho[0, i, s] + rho[1, i, s] - rc, ZERO) / (rj - rc), ONE)
        length += alive * z * cell_dx[i]
        alive = alive if z > ZERO else ZERO
    return length


def pocket_coupling(
    u, s, rho, cell_rj, cell_vf, cell_dx, wave, eps_m, link_first, st_link, st_main, st_pocket, st_h,
):  # noqa: ANN001
    """Pocket stream u and its approach's shared stream, after the node model: of the queue that
    holds the less restricted of the two, the share within the pocket's reach, keep = min(1, L_p / x),
    keeps its partial-FIFO flow; the rest stands in arrival order and passes only at the more
    restricted stream's rate (strict FIFO): h <- h_lo + keep (h - h_lo). x is the queue that
    decides: the pocketed movement's own, f lanes L_q in its one lane, when it is the held one
    (it overflows into the shared lanes), else the shared movements', (1 - f) L_q (it blocks the
    pocket's entrance); L_q is `jammed_length`. Only lowers flows the node model allowed, so every
    supply still holds and the same flux leaves and enters: mass stays exact (docs/model.md)."""
    main = st_main[u]
    h_p = st_h[u, s]
    h_m = st_h[main, s]
    low = min(h_p, h_m)
    queue = jammed_length(st_link[u], s, rho, cell_rj, cell_vf, cell_dx, wave, eps_m, link_first)
    x = (st_pocket[u, 1] if h_p < h_m else st_pocket[u, 2]) * queue
    keep = min(ONE, st_pocket[u, 0] / max(x, TINY))
    st_h[u, s] = low + keep * (h_p - low)
    st_h[main, s] = low + keep * (h_m - low)


def movement_flow(m, s, dem, wv, cell_vf, mov_in, mov_out, mov_ratio, mov_stream, link_first, st_h, gout,
                  gyout,
                  lin, lyin):  # noqa: ANN001
    """Movement m passes fraction x its stream's share x the class demands of its incoming cell:
    the same flux leaves the incoming cell (gout, with its w) and enters the outgoing link (lin,
    with `entering_w`). Both classes of a stream are held alike."""
    share = mov_ratio[m] * st_h[mov_stream[m], s]
    last = link_first[mov_in[m] + 1] - 1
    lk = mov_out[m]
    vf_out = cell_vf[link_first[lk]]
    for k in range(2):
        f = share * dem[k, last, s]
        gout[k, last, s] += f
        gyout[k, last, s] += f * wv[k, last, s]
        lin[k, lk, s] += f
        lyin[k, lk, s] += f * entering_w(wv[k, last, s], vf_out)


# The static arrays of the junctions (Simulator._static names), in the kernels' argument order.
JUNCTION_ARRAYS = (
    "link_first", "jn_mov_ptr", "jn_out_ptr", "jn_st_ptr", "jn_out_link", "mov_in", "mov_out", "mov_ratio",
    "mov_signal", "mov_phase", "mov_stream", "mov_yield", "mov_yield_share", "st_link", "st_cap", "st_main",
    "st_pocket",
)


def junction_flow(
    n, s, t_local, rho, cell_rj, cell_vf, cell_dx, wave, eps_m, c_bound, dem, wv, vel, phi, gout, gyout, lin,
    lyin, jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_in, mov_out, mov_ratio, mov_signal, mov_phase,
    mov_stream, mov_yield, mov_yield_share, st_link, st_cap, st_main, st_pocket, sig_phase, sig_amber,
    link_first, t_gap, t_follow, sd, sdw, sdp, st_h, st_q, rsup, rres,
):  # noqa: ANN001
    """Junction n for scenario s, all passes (the CUDA kernel's thread; the CPU kernel runs each
    pass over all junctions with the scenarios innermost): signal gates and permitted-left gap
    capacities restrict each stream, exits sum the demand they are offered and give their
    supply, the node model fixes each stream's flow, a turn pocket whose queue outgrows it couples
    with its approach's shared stream, and the movements pass it. The same flux
    leaves one cell and enters the other: mass is exact."""
    for q in range(jn_out_ptr[n], jn_out_ptr[n + 1]):
        junction_open(q, s, jn_out_link, sd, sdw, sdp)
    for u in range(jn_st_ptr[n], jn_st_ptr[n + 1]):
        stream_open(u, s, st_h)
    for m in range(jn_mov_ptr[n], jn_mov_ptr[n + 1]):
        movement_limit(m, s, t_local, dem, mov_in, mov_ratio, mov_signal, mov_phase, mov_stream, mov_yield,
                       mov_yield_share, sig_phase, sig_amber, link_first, t_gap, t_follow, gout, gyout, st_h)
    for m in range(jn_mov_ptr[n], jn_mov_ptr[n + 1]):
        movement_demand(m, s, dem, wv, phi, cell_vf, mov_in, mov_out, mov_ratio, mov_stream, link_first,
                        st_h, sd,
                        sdw, sdp)
    for q in range(jn_out_ptr[n], jn_out_ptr[n + 1]):
        outgoing_supply(q, s, rho, cell_rj, cell_vf, wave, eps_m, c_bound, vel, jn_out_link, link_first,
                        sd, sdw,
                        sdp, rsup)
    node_model(n, s, dem, jn_mov_ptr, jn_out_ptr, jn_st_ptr, jn_out_link, mov_out, mov_ratio, mov_stream,
               st_link, st_cap, link_first, st_h, st_q, rsup, rres)
    for u in range(jn_st_ptr[n], jn_st_ptr[n + 1]):
        if st_main[u] >= 0:
            pocket_coupling(u, s, rho, cell_rj, cell_vf, cell_dx, wave, eps_m, link_first, st_link, st_main,
                            st_pocket, st_h)
    for m in range(jn_mov_ptr[n], jn_mov_ptr[n + 1]):
        movement_flow(m, s, dem, wv, cell_vf, mov_in, mov_out, mov_ratio, mov_stream, link_first, st_h, gout,
                      gyout, lin, lyin)


def entry_flow(
    e, s, h, rho, cell_rj, cell_vf, wave, alpha, eps_m, c_bound, vel, lin, lyin, entry_link, link_first,
    queue,
    rate,
):  # noqa: ANN001
    """Point queue of entry e: what waits plus what arrives this step, limited by the entry
    cell's supply; vehicles join at the equilibrium w (v_f) of that cell. Returns arrivals (veh)."""
    lk = entry_link[e]
    first = link_first[lk]
    rj = cell_rj[first]
    vf = cell_vf[first]
    a_m = queue[0, e, s] / h + rate[0, e, s]
    a_c = queue[1, e, s] / h + rate[1, e, s]
    eff_m = effective_density(a_m, a_c, 0, alpha, eps_m)
    eff_c = effective_density(a_m, a_c, 1, alpha, eps_m)
    phi_m = a_m / max(eff_m, TINY) if eff_m > ZERO else ZERO
    phi_c = a_c / max(eff_c, TINY) if eff_c > ZERO else ZERO
    s_m = class_supply(vf, phi_m, vel[0, first, s], rj, vf, wave)
    s_c = class_supply(vf, phi_c, vel[1, first, s], rj, vf, wave)
    cap = space_supply(eps_m * rho[0, first, s] + rho[1, first, s], rj, c_bound)
    f_m, f_c = limit_factors(a_m, a_c, s_m, s_c, cap, eps_m)
    in_m = a_m * f_m
    in_c = a_c * f_c
    lin[0, lk, s] += in_m
    lin[1, lk, s] += in_c
    lyin[0, lk, s] += in_m * vf
    lyin[1, lk, s] += in_c * vf
    queue[0, e, s] += h * (rate[0, e, s] - in_m)
    queue[1, e, s] += h * (rate[1, e, s] - in_c)
    return h * (rate[0, e, s] + rate[1, e, s])


def exit_flow(x, s, h, dem, wv, gout, gyout, exit_link, exit_cap, link_first, eps_m):  # noqa: ANN001
    """Exit x discharges the demand of its link's last cell up to the exit supply (car
    equivalents/s). Returns the vehicles that left this step."""
    last = link_first[exit_link[x] + 1] - 1
    d_m = dem[0, last, s]
    d_c = dem[1, last, s]
    f_m, f_c = limit_factors(d_m, d_c, d_m, d_c, exit_cap[x], eps_m)
    out_m = d_m * f_m
    out_c = d_c * f_c
    gout[0, last, s] = out_m
    gout[1, last, s] = out_c
    gyout[0, last, s] = out_m * wv[0, last, s]
    gyout[1, last, s] = out_c * wv[1, last, s]
    return h * (out_m + out_c)


def transport_cell(
    i, s, h, rho, y, flux, keep, weight, cell_dx, cell_first, cell_lnk, gout, gyout, lin, lyin,
):  # noqa: ANN001
    """Conservative update of cell i: inflow from the cell before it, or from the link's junction
    or entry when it is the first cell, minus its outflow; the outflow is also recorded,
    flux <- keep flux + weight gout (order 1: 0, 1; Heun's two stages: 0, 1/2 then 1, 1/2)."""
    lam = h / cell_dx[i]
    first = cell_first[i]
    lk = cell_lnk[i]
    before = max(i - 1, 0)
    for k in range(2):
        from_link = lin[k, lk, s]
        from_cell = gout[k, before, s]
        fin = from_link if first else from_cell
        from_link_y = lyin[k, lk, s]
        from_cell_y = gyout[k, before, s]
        fyin = from_link_y if first else from_cell_y
        rho[k, i, s] += lam * (fin - gout[k, i, s])
        y[k, i, s] += lam * (fyin - gyout[k, i, s])
        flux[k, i, s] = keep * flux[k, i, s] + weight * gout[k, i, s]


def relax_cell(i, s, h, rho, y, flux, cell_rj, cell_vf, cell_dx, wave, alpha, eps_m, eps, decay_m,
               decay_c):  # noqa: ANN001
    """Exact relaxation of cell i over a step of h; returns its delay this step: per class
    rho_k dx (1 - u_k / v_f) h, u_k = `cell_speed`, the speed at which the class's mass moved."""
    rj = cell_rj[i]
    vf = cell_vf[i]
    rm = rho[0, i, s]
    rc = rho[1, i, s]
    delay = ZERO
    for k in range(2):
        rk = rho[k, i, s]
        r = effective_density(rm, rc, k, alpha, eps_m)
        p = pressure(r, rj, vf, wave)
        decay = decay_m if k == 0 else decay_c
        yk = relaxed_y(rk, y[k, i, s], p, vf - p, decay)
        y[k, i, s] = yk
        # cell_speed of the relaxed state, written out so as not to recompute p
        moved = min(max(yk / max(rk, TINY) - p, ZERO), flux[k, i, s] / max(rk, TINY))
        u = moved if rk > eps else ZERO
        delay += rk * max(ONE - u / vf, ZERO)
    return delay * cell_dx[i] * h


def update_cell(
    i, s, h, rho, y, flux, cell_rj, cell_vf, cell_dx, cell_first, cell_lnk, wave, alpha, eps_m, eps, decay_m,
    decay_c, gout, gyout, lin, lyin,
):  # noqa: ANN001
    """First-order step of cell i: conservative update, then exact relaxation. Returns its delay."""
    transport_cell(i, s, h, rho, y, flux, ZERO, ONE, cell_dx, cell_first, cell_lnk, gout, gyout, lin, lyin)
    return relax_cell(i, s, h, rho, y, flux, cell_rj, cell_vf, cell_dx, wave, alpha, eps_m, eps, decay_m,
                      decay_c)


def cell_speed(k, i, s, rho, y, flux, cell_rj, cell_vf, wave, alpha, eps_m, eps):  # noqa: ANN001
    """The one speed of class k in cell i: the speed at which its mass moved in the last step,
    min(v, F_k / rho_k) with v = max(w - p, 0) the ARZ speed and F_k the class's outflow; 0 where
    the class is absent. A class that cannot leave (a jam, a red light) has speed 0 whatever its
    v: this is what the read-outs report and what the delay integrates."""
    rk = rho[k, i, s]
    r = effective_density(rho[0, i, s], rho[1, i, s], k, alpha, eps_m)
    v = max(y[k, i, s] / max(rk, TINY) - pressure(r, cell_rj[i], cell_vf[i], wave), ZERO)
    moved = min(v, flux[k, i, s] / max(rk, TINY))
    return moved if rk > eps else ZERO


# ----------------------------------------------------------------------------- second order (MUSCL)


def mc_slope(q_before: float, q: float, q_after: float) -> float:
    """Monotonised-central limited slope (change of q across one cell): the smallest of
    2|q - q_before|, 2|q_after - q| and |q_after - q_before| / 2, and 0 at an extremum."""
    d1 = q - q_before
    d2 = q_after - q
    size = min(min(TWO * abs(d1), TWO * abs(d2)), HALF * abs(d1 + d2))
    signed = size if d1 > ZERO else -size
    return signed if d1 * d2 > ZERO else ZERO


def weighted_faces(
    q_before: float, q: float, q_after: float, m: float, m_left: float, m_right: float, eps: float
) -> tuple[float, float]:
    """Left and right face values of an intensive quantity q carried by a mass m (a share of the
    density, or w carried by rho_k), whose face masses are m_left and m_right (their mean is m).

    q_right = q + sigma m_left / 2m, q_left = q - sigma m_right / 2m: then
    (m_left q_left + m_right q_right) / 2 = m q, so the face states average to the cell's
    conserved quantity exactly, and the slope sigma is scaled down so both faces stay between the
    neighbours' values (no new extremum: the bounds of q hold at the faces). No mass, no slope."""
    sigma = mc_slope(q_before, q, q_after)
    m2 = TWO * m
    push_right = abs(sigma) * m_left
    push_left = abs(sigma) * m_right
    # fractions <= 1 written without overflow (fastmath assumes no inf)
    fit_right = min(push_right, m2 * abs(q_after - q)) / max(push_right, TINY) if push_right > TINY else ONE
    fit_left = min(push_left, m2 * abs(q - q_before)) / max(push_left, TINY) if push_left > TINY else ONE
    sigma = sigma * min(fit_right, fit_left) if m > eps else ZERO
    return q - sigma * m_right / max(m2, TINY), q + sigma * m_left / max(m2, TINY)


def reconstruct_cell(i, s, rho, y, cell_first, cell_last, eps_m, eps, rho_l, y_l, rho_r, y_r):  # noqa: ANN001
    """MUSCL face states of cell i (left face rho_l, y_l; right face rho_r, y_r), per class.

    Reconstructed variables: the space density sigma = eps_m rho_m + rho_c (linear, MC slope), the
    motorcycles' share of it eps_m rho_m / sigma weighted by sigma, and each class's w weighted by
    its density (`weighted_faces`). So every face state has rho_k >= 0, sigma <= k_j and each w
    between its neighbours' values, and the two faces average to the cell's rho_k and y_k exactly.
    The first and last cells of a link keep a flat profile (first order at junction and boundary
    interfaces)."""
    b = max(i - 1, 0)
    a = min(i + 1, rho.shape[1] - 1)
    inner = not (cell_first[i] | cell_last[i])
    tb = eps_m * rho[0, b, s] + rho[1, b, s]
    t = eps_m * rho[0, i, s] + rho[1, i, s]
    ta = eps_m * rho[0, a, s] + rho[1, a, s]
    half = HALF * mc_slope(tb, t, ta) if inner else ZERO
    t_left = t - half
    t_right = t + half
    share_b = eps_m * rho[0, b, s] / max(tb, TINY)
    share = eps_m * rho[0, i, s] / max(t,
                                       TINY)  # exact even for a nearly empty cell: faces carry both classes
    share_a = eps_m * rho[0, a, s] / max(ta, TINY)
    share_left, share_right = weighted_faces(share_b, share, share_a, t if inner else ZERO, t_left, t_right,
                                             eps)
    # rounding can put a share an ulp outside [0, 1]: clamped, as a negative density would
    # make a negative demand and supply
    space_m_left = min(max(share_left, ZERO), ONE) * t_left
    space_m_right = min(max(share_right, ZERO), ONE) * t_right
    rho_l[0, i, s] = space_m_left / eps_m
    rho_r[0, i, s] = space_m_right / eps_m
    rho_l[1, i, s] = max(t_left - space_m_left, ZERO)
    rho_r[1, i, s] = max(t_right - space_m_right, ZERO)
    class_w_faces(0, i, b, a, s, rho, y, inner, eps, rho_l, y_l, rho_r, y_r)
    class_w_faces(1, i, b, a, s, rho, y, inner, eps, rho_l, y_l, rho_r, y_r)


def class_w_faces(k, i, b, a, s, rho, y, inner, eps, rho_l, y_l, rho_r, y_r):  # noqa: ANN001
    """Face y of class k in cell i (neighbours b, a) from its w weighted by the face densities.
    Called once per class rather than in a loop: LLVM does not unroll a loop this long, and a loop
    left inside the scenario loop stops its vectorisation (measured 6.5x slower per scenario)."""
    rb = rho[k, b, s]
    rk = rho[k, i, s]
    ra = rho[k, a, s]
    w = y[k, i, s] / max(rk, TINY)
    mass = rk if (rb > eps) & (ra > eps) & inner else ZERO
    w_left, w_right = weighted_faces(y[k, b, s] / max(rb, TINY), w, y[k, a, s] / max(ra, TINY), mass,
                                     rho_l[k, i, s], rho_r[k, i, s], eps)
    y_l[k, i, s] = rho_l[k, i, s] * w_left
    y_r[k, i, s] = rho_r[k, i, s] * w_right


def face_speed(i, s, rho_f, y_f, cell_rj, cell_vf, wave, alpha, eps_m, eps, vel):  # noqa: ANN001
    """Per class speed of a face state of cell i (as `eval_cell` computes it for a cell)."""
    for k in range(2):
        w, p, _ = class_w(k, i, s, rho_f, y_f, cell_rj, cell_vf, wave, alpha, eps_m, eps)
        vel[k, i, s] = max(w - p, ZERO)


# ----------------------------------------------------------------------------- compilation

FUNCTIONS = (
    "effective_density", "pressure", "critical_density",
    "curve_flow", "class_demand", "class_supply", "space_supply", "limit_factors", "relaxed_y",
    "class_w", "eval_cell", "interior_flux", "movement_gate", "permitted_capacity", "junction_open",
    "stream_open", "movement_limit", "movement_demand", "entering_w", "outgoing_supply", "stream_demand",
    "node_model", "jammed_length", "pocket_coupling", "movement_flow", "junction_flow", "entry_flow",
    "exit_flow", "transport_cell",
    "relax_cell", "update_cell", "mc_slope", "weighted_faces", "class_w_faces", "reconstruct_cell",
    "face_speed", "cell_speed",
)


def compile_for(decorator: Callable[[Any], Any], real: Any = None) -> types.SimpleNamespace:
    """The functions of this module compiled by `decorator`, calling each other compiled; with
    `real` (np.float32), their constants are `real` scalars, so float32 inputs compute in float32.

    Each function is cloned with its own globals dict in which the other physics names point to
    their compiled versions; numba resolves globals when it compiles, so the composition holds.
    """
    namespace = dict(globals())
    if real is not None:
        namespace.update(constants(real))
    compiled = {}
    for name in FUNCTIONS:
        f = globals()[name]
        clone = types.FunctionType(f.__code__, namespace, name, f.__defaults__, f.__closure__)
        clone.__qualname__ = f.__qualname__
        clone.__module__ = f.__module__
        compiled[name] = decorator(clone)
    namespace.update(compiled)
    return types.SimpleNamespace(**compiled)
