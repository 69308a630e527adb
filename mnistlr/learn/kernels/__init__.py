"""Numba kernels: small pure functions over C-contiguous arrays, each behind a checking wrapper.

`setup` prepares Numba's cache and is the only module that imports numba; `scoring`, `prox`,
`fused` (loss and gradient: `fused_blocks` for uint8 X, `fused_rows` for float X, `residuals`
shared) and `gram` hold the kernels.
"""
