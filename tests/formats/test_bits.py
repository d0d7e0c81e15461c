"""Bit packing (pocketml.formats.bits): LSB-first streams against two independent references."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketml.formats.bits import pack_bits, packed_size, unpack_bits

RNG = np.random.default_rng(1234)


def ref_pack_bitmatrix(values, nbits):
    """Reference 1: a (count, nbits) bit matrix, LSB first, then np.packbits little-endian."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    bits = ((v[:, None] >> np.arange(nbits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bits, bitorder="little")


def ref_pack_bigint(values, nbits):
    """Reference 2: one Python integer holding the whole little-endian bit stream."""
    v = [int(a) for a in np.asarray(values).reshape(-1)]
    acc = 0
    for i, a in enumerate(v):
        acc |= a << (i * nbits)
    return np.frombuffer(acc.to_bytes(math.ceil(len(v) * nbits / 8), "little"), np.uint8)


@pytest.mark.parametrize("nbits", range(1, 9))
@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 8, 9, 13, 64, 101, 1001])
def test_pack_matches_two_references_and_round_trips(nbits, count):
    values = RNG.integers(0, 1 << nbits, count).astype(np.uint8)
    packed = pack_bits(values, nbits)
    assert packed.dtype == np.uint8 and packed.ndim == 1
    assert packed.size == packed_size(count, nbits) == math.ceil(count * nbits / 8)
    np.testing.assert_array_equal(packed, ref_pack_bitmatrix(values, nbits))
    np.testing.assert_array_equal(packed, ref_pack_bigint(values, nbits))
    back = unpack_bits(packed, nbits, count)
    assert back.dtype == np.uint8 and back.shape == (count,)
    np.testing.assert_array_equal(back, values)


@pytest.mark.parametrize("nbits", range(1, 9))
def test_unpack_rejects_short_streams_and_ignores_extra_bytes(nbits):
    values = RNG.integers(0, 1 << nbits, 37)
    packed = pack_bits(values, nbits)
    with pytest.raises(ValueError, match="too short"):
        unpack_bits(packed[:-1], nbits, 37)
    np.testing.assert_array_equal(unpack_bits(np.append(packed, [255, 255]).astype(np.uint8), nbits, 37),
                                  values)


def test_pack_reads_any_shape_row_major_and_checks_its_input():
    v = RNG.integers(0, 8, (3, 5, 2))
    np.testing.assert_array_equal(pack_bits(v, 3), pack_bits(v.reshape(-1), 3))
    np.testing.assert_array_equal(pack_bits(np.array([True, False, True]), 1), [0b101])
    # bit 0 of the stream is the LSB of byte 0: values 1, 2 at 2 bits -> 0b1001
    np.testing.assert_array_equal(pack_bits(np.array([1, 2]), 2), [0b1001])
    for bad in ([4], [-1]):
        with pytest.raises(ValueError):
            pack_bits(np.array(bad), 2)
    for nbits in (0, 9, 2.0, True):
        with pytest.raises(ValueError):
            pack_bits(np.array([0]), nbits)
    with pytest.raises(ValueError):
        pack_bits(np.array([0.5]), 2)
    with pytest.raises(ValueError):
        unpack_bits(np.zeros(4, np.int8), 2, 3)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8).flatmap(lambda b: st.tuples(st.just(b), st.lists(st.integers(0, (1 << b) - 1),
                                                                          max_size=70))))
def test_pack_round_trip_property(case):
    nbits, values = case
    packed = pack_bits(np.array(values, dtype=np.int64), nbits)
    np.testing.assert_array_equal(packed, ref_pack_bigint(values, nbits))
    assert unpack_bits(packed, nbits, len(values)).tolist() == values
