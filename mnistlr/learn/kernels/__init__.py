"""Numba kernels: small pure functions over C-contiguous arrays, each behind a checking wrapper.

`setup` prepares Numba's cache and is the only module that imports numba; `scoring`, `prox`,
`fused` (loss and gradient) and `gram` hold the kernels.
"""
