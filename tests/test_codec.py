"""SID codec: token offsets, AL-GR strings, integer keys, catalogue-sized codebooks."""

import numpy as np
import pytest

from sid_index.codec import auto_sizes, keys, offsets, render, token_ids, vocabulary_size


def test_tokens_follow_algr_layout():
    codes = np.array([[1, 2, 3], [8191, 0, 17]])
    sizes = [8192, 8192, 8192]
    assert offsets(sizes) == [0, 8192, 16384] and vocabulary_size(sizes) == 24576
    assert render(codes, sizes) == ["C1C8194C16387", "C8191C8192C16401"]
    np.testing.assert_array_equal(token_ids(codes, [4, 300, 9]), [[1, 6, 307], [8191, 4, 321]])


def test_keys_are_unique_per_sid_and_ordered():
    codes = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    k = keys(codes, [2, 2, 2])
    assert k.tolist() == [1, 2, 4, 1]
    with pytest.raises(ValueError, match="64-bit"):
        keys(codes, [2**32, 2**32, 2])


def test_auto_sizes_fit_the_catalogue():
    assert auto_sizes(300) == [16, 16, 16]
    assert auto_sizes(10_000_000) == [512, 512, 512]
    assert auto_sizes(10**12) == [8192, 8192, 8192]
