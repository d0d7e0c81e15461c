"""Index values out of range raise IndexRangeError, where PyTorch raises too; in-range negative
indices are accepted exactly where PyTorch accepts them."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pocketml import InputError
from pocketml.errors import IndexRangeError

from helpers import run

T = torch.from_numpy
x = np.arange(12, dtype=np.float32).reshape(3, 4)


def both_raise(ours, theirs, match):
    with pytest.raises(IndexRangeError, match=match) as e:
        ours()
    with pytest.raises((IndexError, RuntimeError)):
        theirs()
    return e.value


@pytest.mark.parametrize("i", [3, 99999, -1, -5])
def test_embedding_rejects_ids_outside_the_vocabulary(i):
    idx = np.array([0, i])
    e = both_raise(lambda: run("embedding", [x, idx]), lambda: F.embedding(T(idx), T(x)),
                   rf"token id {i} is outside \[0, 2\]")
    assert (e.value, e.lo, e.hi, e.operand) == (i, 0, 2, 1)
    assert isinstance(e, InputError)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32])
def test_range_check_works_for_every_index_dtype(dtype):
    with pytest.raises(IndexRangeError, match="token id 100"):
        run("embedding", [x, np.array([100], dtype)])
    assert run("embedding", [x, np.array([2], dtype)]).tolist() == [x[2].tolist()]


def test_index_select_rejects_negative_indices_tensor_indexing_accepts_them():
    neg = np.array([-1])
    both_raise(lambda: run("take", [x, neg], axis=0, negative_indices=False),
               lambda: torch.index_select(T(x), 0, T(neg)), r"index -1 is outside \[0, 2\]")
    np.testing.assert_array_equal(run("take", [x, neg], axis=0), T(x)[T(neg)].numpy())
    both_raise(lambda: run("take", [x, np.array([-4])], axis=0), lambda: T(x)[T(np.array([-4]))],
               r"index -4 is outside \[-3, 2\] along axis 0")
    both_raise(lambda: run("take", [x, np.array([4])], axis=1), lambda: T(x)[:, T(np.array([4]))],
               r"index 4 is outside \[-4, 3\] along axis 1")


@pytest.mark.parametrize("i", [4, -1])
def test_gather_and_scatter_reject_what_torch_rejects(i):
    idx = np.array([[0], [i], [1]])
    both_raise(lambda: run("gather", [x, idx], axis=1), lambda: torch.gather(T(x), 1, T(idx)),
               rf"index {i} is outside \[0, 3\] along axis 1")
    upd = np.ones((3, 1), np.float32)
    both_raise(lambda: run("scatter", [x, idx, upd], axis=1),
               lambda: T(x).clone().scatter_(1, T(idx), T(upd)), rf"index {i} is outside \[0, 3\]")


def test_index_and_index_put_accept_negatives_and_reject_out_of_range():
    i0, i1 = np.array([0, -3]), np.array([-4, 3])
    np.testing.assert_array_equal(run("index", [x, i0, i1], axes=[0, 1]), T(x)[T(i0), T(i1)].numpy())
    bad = np.array([0, -5])
    e = both_raise(lambda: run("index", [x, i0, bad], axes=[0, 1]), lambda: T(x)[T(i0), T(bad)],
                   r"index -5 is outside \[-4, 3\] along axis 1")
    assert e.operand == 2  # the second index tensor, after x
    v = np.float32(9)
    want = T(x).clone().index_put_((T(i0),), torch.tensor(v)).numpy()
    np.testing.assert_array_equal(run("index_put", [x, np.array(v), i0], axes=[0]), want)
    e = both_raise(lambda: run("index_put", [x, np.array(v), np.array([3])], axes=[0]),
                   lambda: T(x).clone().index_put_((torch.tensor([3]),), torch.tensor(v)),
                   r"index 3 is outside \[-3, 2\] along axis 0")
    assert e.operand == 2  # after x and values


def test_empty_axis_and_empty_indices():
    with pytest.raises(IndexRangeError, match="empty axis"):
        run("embedding", [np.zeros((0, 4), np.float32), np.array([0])])
    assert run("embedding", [x, np.zeros((0,), np.int64)]).shape == (0, 4)
