"""Residuals of residual quantisation: updated in place block by block with numpy's arithmetic on the host,
kept on the GPU there (CUDA cases run where a GPU is present, e.g. on the device machine)."""

import numpy as np
import pytest
import torch

from sid_index.kmeans import ROW_BLOCK, KMeansParams, Residuals, TorchBackend
from sid_index.rq import RQKMeans, train_rq_kmeans

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def clustered(seed: int) -> np.ndarray:
    """Unit vectors around 8 centres in 32 dimensions (no project fixtures: this module also runs on a bare GPU
    machine with `pytest --noconftest`)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 32))
    x = centres[rng.integers(0, 8, 4000)] + 0.3 * rng.normal(size=(4000, 32))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_host_residuals_equal_numpy_across_block_boundaries_and_leave_the_input_alone():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROW_BLOCK + 5, 3), dtype=np.float32)
    book = rng.standard_normal((7, 3), dtype=np.float32)
    codes = rng.integers(0, 7, len(x)).astype(np.int32)
    before = x.copy()
    residual = Residuals(x, torch.device("cpu"))
    residual.subtract(book, codes)
    expected = x - book[codes]
    assert np.array_equal(residual.rows.numpy(), expected)
    assert np.array_equal(residual.squared_norms(), (expected * expected).sum(1))
    assert np.array_equal(x, before)


def test_read_only_input_is_copied_not_written():
    x = np.ones((4, 2), np.float32)
    x.flags.writeable = False
    residual = Residuals(x, torch.device("cpu"))
    residual.subtract(np.ones((1, 2), np.float32), np.zeros(4, np.int32))
    assert residual.rows.abs().sum() == 0 and x.sum() == 8


@cuda
def test_cuda_residuals_stay_on_the_gpu_and_match_the_host():
    x = clustered(0)
    book = x[:16].copy()
    codes = np.arange(len(x), dtype=np.int32) % 16
    on_gpu, on_host = Residuals(x, torch.device("cuda")), Residuals(x, torch.device("cpu"))
    assert on_gpu.rows.device.type == "cuda"
    on_gpu.subtract(book, codes)
    on_host.subtract(book, codes)
    assert np.array_equal(on_gpu.rows.cpu().numpy(), on_host.rows.numpy())
    np.testing.assert_allclose(on_gpu.squared_norms(), on_host.squared_norms(), rtol=1e-5)


@cuda
def test_cuda_encoding_gives_the_host_codes():
    x = clustered(2)
    model = train_rq_kmeans(x, [8, 16, 16], TorchBackend("cpu"), KMeansParams(iters=10))
    host = model.encode(x)
    gpu = RQKMeans(model.codebooks, TorchBackend("cuda")).encode(x)
    assert (gpu.codes == host.codes).all(1).mean() > 0.999
    np.testing.assert_allclose(gpu.errors, host.errors, rtol=1e-3, atol=1e-4)
    trained = train_rq_kmeans(x, [8, 16, 16], TorchBackend("cuda"), KMeansParams(iters=10)).encode(x)
    assert trained.errors[:, -1].mean() < 1.05 * host.errors[:, -1].mean()
