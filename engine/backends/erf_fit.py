"""Derivation of the erf approximation used by the one-pass GELU kernel (engine/backends/wasm/kernels.ts).

erf(u) ~= u * P(u^2) / Q(u^2) on [0, 3.92] (odd, so the whole line by symmetry; beyond 3.92 erf is
+-1 to within 5.6e-9), P of degree 6 and Q of degree 5 in u^2, Q(0) = 1. Fitted by linearised least
squares (P(z) - erf*Q(z) = 0) with Lawson-style reweighting towards the largest errors.
Prints the coefficients and the max abs error against math.erf in float64 evaluation
(1.5e-9 for the printed set) -- well under float32's 6e-8 spacing near 1.

    /usr/bin/python3 engine/backends/erf_fit.py        (needs numpy)
"""
import math

import numpy as np

LIMIT = 3.92
DEG_P, DEG_Q = 6, 5

u = np.concatenate([np.linspace(0, LIMIT, 20000), LIMIT * np.sin(np.linspace(0, np.pi / 2, 20000))])
y = np.array([math.erf(v) for v in u])
z = u * u
w = np.ones_like(u)
for _ in range(30):
    A = np.concatenate([u[:, None] * z[:, None] ** np.arange(DEG_P + 1), -y[:, None] * z[:, None] ** np.arange(1, DEG_Q + 1)], axis=1)
    sol, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
    p, q = sol[:DEG_P + 1], np.concatenate([[1.0], sol[DEG_P + 1:]])
    err = u * np.polyval(p[::-1], z) / np.polyval(q[::-1], z) - y
    w = w * (1 + 0.5 * np.abs(err) / np.abs(err).max())
    w /= w.max()
print('P =', [float('%.17g' % c) for c in p])
print('Q =', [float('%.17g' % c) for c in q])
print('max abs error %.2e' % np.abs(err).max())
