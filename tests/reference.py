"""Naive plain-NumPy references for the kernels and solvers, in float64, written for clarity not speed."""

from __future__ import annotations

import math

import numpy as np


def softmax_rows(S):
    """Row-wise softmax, one row at a time."""
    S = np.asarray(S, dtype=np.float64)
    out = np.empty_like(S)
    for i, row in enumerate(S):
        e = np.exp(row - row.max())
        out[i] = e / e.sum()
    return out


def sigmoid(S):
    """1/(1 + e^−s) element by element (math.exp on the side that cannot overflow)."""
    S = np.asarray(S, dtype=np.float64)
    flat = [1.0 / (1.0 + np.exp(-s)) if s >= 0 else np.exp(s) / (1.0 + np.exp(s)) for s in S.ravel()]
    return np.array(flat).reshape(S.shape)


def softmax_cross_entropy(X, y, W, b):
    """(Σ_i ℓ_i, n_correct, ∇_W Σℓ, ∇_b Σℓ) of the multinomial cross-entropy, sample by sample."""
    X, W, b = (np.asarray(a, dtype=np.float64) for a in (X, W, b))
    loss, correct = 0.0, 0
    G, gb = np.zeros_like(W), np.zeros_like(b)
    for x, label in zip(X, y, strict=True):
        s = x @ W + b
        p = softmax_rows(s[None])[0]
        loss += -np.log(p[label])
        correct += int(np.argmax(s) == label)
        r = p.copy()
        r[label] -= 1.0
        G += np.outer(x, r)
        gb += r
    return loss, correct, G, gb


def ovr_cross_entropy(X, y, W, b):
    """Same for the sum of per-column binary cross-entropies (one column: binary, y in {0, 1})."""
    X, W, b = (np.asarray(a, dtype=np.float64) for a in (X, W, b))
    k = W.shape[1]
    loss, correct = 0.0, 0
    G, gb = np.zeros_like(W), np.zeros_like(b)
    for x, label in zip(X, y, strict=True):
        s = x @ W + b
        t = np.array([float(label)]) if k == 1 else (np.arange(k) == label).astype(float)
        p = sigmoid(s)
        loss += float(np.sum(-t * np.log(p) - (1 - t) * np.log1p(-p)))
        predicted = int(s[0] > 0) if k == 1 else int(np.argmax(s))
        correct += int(predicted == label)
        G += np.outer(x, p - t)
        gb += p - t
    return loss, correct, G, gb


def soft_threshold(W, t):
    """sign(w)·max(|w| − t, 0) with an explicit branch per entry."""
    W = np.asarray(W, dtype=np.float64)
    out = np.zeros_like(W)
    for idx, w in np.ndenumerate(W):
        out[idx] = w - t if w > t else (w + t if w < -t else 0.0)
    return out


def objective(X, y, W, b, kind, l2):
    """Mean loss + (l2/2)‖W‖² (intercept free)."""
    loss = (softmax_cross_entropy if kind == "softmax" else ovr_cross_entropy)(X, y, W, b)[0]
    return loss / len(y) + 0.5 * l2 * float(np.sum(np.asarray(W, dtype=np.float64) ** 2))


def ridge(X, Y, l2):
    """(W, b) minimising ½‖XW + b − Y‖² + (l2/2)‖W‖², by one augmented linear system.

    Unknowns [W; b]: the normal equations with the intercept row left unpenalised.
    """
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    A = np.hstack([X, np.ones((len(X), 1))])
    penalty = l2 * np.eye(A.shape[1])
    penalty[-1, -1] = 0.0
    solution = np.linalg.solve(A.T @ A + penalty, A.T @ Y)
    return solution[:-1], solution[-1]


def scores(X, W, b):
    """x·W + b row by row, in float64."""
    X, W, b = (np.asarray(a, dtype=np.float64) for a in (X, W, b))
    return np.array([x @ W + b for x in X])


def centered_cross_products(X, Y):
    """(XcᵀXc, XcᵀYc, x̄, ȳ) in float64 from explicitly centred copies."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    return Xc.T @ Xc, Xc.T @ Yc, X.mean(axis=0), Y.mean(axis=0)


def deskew_image(image):
    """Moment-based deskewing by scipy.ndimage.affine_transform (bilinear, zero outside), rounded to uint8.

    Output pixel (r, c) samples the input at (r + r̄ − r₀, c + α(r − r₀) + c̄ − c₀): the shear
    α = cov(r, c)/var(r) about the centre of mass, which moves to the centre (r₀, c₀).
    """
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float64)
    rows, cols = img.shape
    if img.sum() == 0:
        return np.asarray(image).copy()
    r, c = np.mgrid[:rows, :cols]
    total = img.sum()
    r_mean, c_mean = (r * img).sum() / total, (c * img).sum() / total
    var_r = ((r - r_mean) ** 2 * img).sum()
    alpha = ((r - r_mean) * (c - c_mean) * img).sum() / var_r if var_r > 0 else 0.0
    r0, c0 = (rows - 1) / 2, (cols - 1) / 2
    matrix = np.array([[1.0, 0.0], [alpha, 1.0]])
    offset = np.array([r_mean - r0, c_mean - c0 - alpha * r0])
    out = ndimage.affine_transform(img, matrix, offset=offset, order=1, mode="grid-constant", cval=0.0)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def hog_image(image, cell, bins, clip=0.2, eps=1e-6):
    """Histograms of oriented gradients of one image, pixel by pixel: central differences of x/255 (0 on
    the border), each magnitude split linearly between the two nearest of *bins* signed orientations,
    cell × cell cells, 2 × 2-cell blocks normalised by L2-Hys (v/√(‖v‖²+ε), clip, again)."""
    img = np.asarray(image, dtype=np.float64) / 255.0
    rows, cols = img.shape
    cells_down, cells_across = rows // cell, cols // cell
    hist = np.zeros((cells_down, cells_across, bins))
    for r in range(cells_down * cell):
        for c in range(cells_across * cell):
            gx = img[r, c + 1] - img[r, c - 1] if 0 < c < cols - 1 else 0.0
            gy = img[r + 1, c] - img[r - 1, c] if 0 < r < rows - 1 else 0.0
            angle = math.atan2(gy, gx) % (2 * math.pi)
            place = angle / (2 * math.pi) * bins
            k = int(math.floor(place))
            share = place - k
            hist[r // cell, c // cell, k % bins] += math.hypot(gx, gy) * (1 - share)
            hist[r // cell, c // cell, (k + 1) % bins] += math.hypot(gx, gy) * share
    out = []
    for br in range(cells_down - 1):
        for bc in range(cells_across - 1):
            v = np.concatenate([hist[br, bc], hist[br, bc + 1], hist[br + 1, bc], hist[br + 1, bc + 1]])
            v = v / math.sqrt(v @ v + eps)
            v = np.minimum(v, clip)
            out.append(v / math.sqrt(v @ v + eps))
    return np.concatenate(out)


def random_fourier_features(X, W, b, unit):
    """cos((X·unit)W + b)·√(2/D) in float64, row by row."""
    W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
    return np.array([np.cos((np.asarray(x, np.float64) * unit) @ W + b) for x in X]) * np.sqrt(2.0 / W.shape[1])


def pca_components(X, k):
    """(mean, top-k principal directions (d, k), their variances) of X by SVD, float64."""
    X = np.asarray(X, np.float64)
    mean = X.mean(axis=0)
    _, s, Vt = np.linalg.svd(X - mean, full_matrices=False)
    return mean, Vt[:k].T, s[:k] ** 2 / len(X)


def pairwise_products(Z):
    """[z, z_i·z_j for i ≤ j] of each row, by two loops."""
    rows = []
    for z in np.asarray(Z, np.float64):
        quad = [z[i] * z[j] for i in range(len(z)) for j in range(i, len(z))]
        rows.append(np.concatenate([z, quad]))
    return np.array(rows)


def nystroem_features(X, L, gamma, unit):
    """k(x·unit, L)·K_LL^(−1/2) in float64, row by row: scikit-learn's Nystroem normalisation
    (K_LL's eigendecomposition, eigenvalues clipped at 1e-12)."""
    L = np.asarray(L, np.float64)
    K_LL = np.exp(-gamma * ((L[:, None] - L[None]) ** 2).sum(-1))
    eigenvalues, U = np.linalg.eigh(K_LL)
    A = (U / np.sqrt(np.maximum(eigenvalues, 1e-12))) @ U.T
    return np.array([np.exp(-gamma * ((np.asarray(x, np.float64) * unit - L) ** 2).sum(-1)) @ A for x in X])


def lbfgs_h_times(g, S, Y):
    """H·g of the L-BFGS two-loop recursion over pairs S[i], Y[i] (oldest first), in float64, as
    Nocedal & Wright's Algorithm 7.4 writes it."""
    q = np.array(g, dtype=np.float64)
    S, Y = [np.asarray(s, np.float64) for s in S], [np.asarray(y, np.float64) for y in Y]
    rho = [1.0 / float(s @ y) for s, y in zip(S, Y, strict=True)]
    alphas = []
    for s, y, r in zip(reversed(S), reversed(Y), reversed(rho), strict=True):
        a = r * float(s @ q)
        q = q - a * y
        alphas.append(a)
    if S:
        q = q * (float(S[-1] @ Y[-1]) / float(Y[-1] @ Y[-1]))
    for s, y, r, a in zip(S, Y, rho, reversed(alphas), strict=True):
        q = q + (a - r * float(y @ q)) * s
    return q
