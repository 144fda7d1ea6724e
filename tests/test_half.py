"""float16 and bfloat16: storage in half precision, float32 accumulation, one rounding per output
(every op, rank, method, layout, SIMD level and thread count); the dtype rule; special values;
PyTorch half tensors; and the rearrangements, which keep every dtype bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import subpixel_ext as spx
from half_matrix import (
    BF16, F16, HALF_DTYPES, assert_half_close, cases, check_every_bit_pattern, check_matrix, exact_inputs, half_oracle, half_ulp, special_values,
)
from subpixel_ext import reference as ref

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
needs_bf16 = pytest.mark.skipif(BF16 is None, reason="bfloat16 needs ml_dtypes (the [bfloat16] extra)")
half_dtypes = pytest.mark.parametrize("dtype", HALF_DTYPES, ids=[d.name for d in HALF_DTYPES])


# ============================================================================ the oracle's helpers


def test_every_bit_pattern_rounds_to_nearest_even_in_this_process() -> None:
    assert check_every_bit_pattern() == 4 * len(HALF_DTYPES)


def test_half_ulp_is_the_format_spacing() -> None:
    assert half_ulp(np.array([1.0, 1.5, 65504.0, 2.0**-14, 0.0, 2.0**-20]), F16).tolist() == [
        2.0**-10, 2.0**-10, 32.0, 2.0**-24, 2.0**-24, 2.0**-24]
    if BF16 is not None:
        assert half_ulp(np.array([1.0, 3.0, 0.0]), BF16).tolist() == [2.0**-7, 2.0**-6, 2.0**-133]


# ============================================================================ every SIMD level


MATRIX_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["SUBPIXEL_EXT_SIMD"] = LEVEL  # read by the dispatcher at first use
    import subpixel_ext as spx
    from half_matrix import check_every_bit_pattern, check_matrix
    assert spx.show_config()["simd_active"] == LEVEL, spx.show_config()
    assert check_every_bit_pattern() == 4 * len(__import__("half_matrix").HALF_DTYPES)
    print("checks", check_matrix())
    """
)


def test_every_op_rank_layout_method_and_thread_count_at_every_simd_level() -> None:
    levels = [lvl for lvl in spx.show_config()["simd_supported"].split(",") if lvl]
    env = dict(os.environ, PYTHONPATH=TESTS_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = {
        lvl: subprocess.Popen([sys.executable, "-c", MATRIX_SCRIPT.replace("LEVEL", repr(lvl))], env=env, cwd=TESTS_DIR,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for lvl in levels
    }
    expected = _matrix_size()
    for lvl, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{lvl}:\n{err[-4000:]}"
        assert out.strip().splitlines()[-1] == f"checks {expected}", (lvl, out)


def _matrix_size() -> int:
    return len(list(cases(F16))) * len(HALF_DTYPES)


def test_matrix_in_this_process() -> None:
    # The default level, in-process (a failure here is easier to debug than in a child).
    assert check_matrix() == _matrix_size() >= 48 * len(HALF_DTYPES)  # bfloat16 needs ml_dtypes


# ============================================================================ one rounding per output


@half_dtypes
@pytest.mark.parametrize("method", ["direct", "polyphase"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_exact_sums_round_once_to_nearest_even(dtype: np.dtype, method: str, layout: str) -> None:
    # Sums of multiples of 1/256 are exact in float32, so the result is the exact value rounded
    # once: bit-exact against the oracle (which rounds the same exact value once).
    rng = np.random.default_rng(3)
    x = exact_inputs(rng, (2, 7, 11, 21) if layout == "NCHW" else (2, 11, 21, 7), dtype)
    w = exact_inputs(rng, (7, 9, 3, 3), dtype)
    b = exact_inputs(rng, (9,), dtype)
    y = spx.conv_transpose2d(x, w, b, stride=2, padding=1, method=method, layout=layout)
    expected = ref.conv_transpose2d(x, w, b, stride=2, padding=1, layout=layout)
    assert y.dtype == dtype and np.array_equal(y.view(np.uint16), expected.view(np.uint16))
    # and the rounding mattered: many results are not representable in the format
    exact = ref.conv_transpose2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride=2,
                                 padding=1, layout=layout)
    assert np.mean(exact != y.astype(np.float64)) > 0.1


@half_dtypes
def test_exact_sums_conv_and_subpixel_3d(dtype: np.dtype) -> None:
    rng = np.random.default_rng(4)
    x = exact_inputs(rng, (1, 3, 4, 5, 9), dtype)
    wc = exact_inputs(rng, (5, 3, 2, 3, 3), dtype)
    assert np.array_equal(spx.conv3d(x, wc, padding=1).view(np.uint16), ref.conv3d(x, wc, padding=1).view(np.uint16))
    ws = exact_inputs(rng, (16, 3, 3, 3, 3), dtype)
    got = spx.subpixel_conv3d(x, ws, 2, padding=1, layout="NCDHW")
    assert np.array_equal(got.view(np.uint16), ref.subpixel_conv3d(x, ws, 2, padding=1).view(np.uint16))


@half_dtypes
@pytest.mark.parametrize("c_in", [3, 8])  # one input channel per reduction step, and channels inner
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])  # stores from registers, and spilled
@pytest.mark.parametrize("width", [28, 44])  # whole strided runs; runs and a remainder
def test_wide_channels_last_rows_within_one_ulp(dtype: np.dtype, c_in: int, activation, width: int) -> None:
    """Rows of 28 and 44 pixels (per phase) and 32 output channels, channels last: the chanvec
    tiles, including the AVX-512 strided runs of 14 pixels and the pointer tiles for the rest,
    store halves."""
    rng = np.random.default_rng(c_in)
    x = rng.standard_normal((2, 3, width, c_in)).astype(dtype)
    w = rng.standard_normal((c_in, 32, 4, 4)).astype(dtype)
    kw = dict(stride=2, padding=1, layout="NHWC", activation=activation)
    expected, scale = half_oracle(lambda x_, w_: ref.conv_transpose2d(x_, w_, **kw), x, w)
    assert_half_close(spx.conv_transpose2d(x, w, **kw), expected, scale, dtype, "conv_transpose2d")
    wc = rng.standard_normal((32, c_in, 1, 3)).astype(dtype)
    kc = dict(padding=(0, 1), layout="NHWC", activation=activation)
    expected, scale = half_oracle(lambda x_, w_: ref.conv2d(x_, w_, **kc), x, wc)
    assert_half_close(spx.conv2d(x, wc, **kc), expected, scale, dtype, "conv2d")


@given(
    dtype=st.sampled_from(HALF_DTYPES), c_in=st.integers(1, 9), c_out=st.integers(1, 9), width=st.integers(1, 40),
    k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(1, 2), last=st.booleans(),
    method=st.sampled_from(["direct", "polyphase"]), seed=st.integers(0, 2**16),
)
def test_random_transposed_1d_within_one_ulp(dtype, c_in, c_out, width, k, s, d, last, method, seed) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, width, c_in) if last else (2, c_in, width)).astype(dtype)
    w = rng.standard_normal((c_in, c_out, k)).astype(dtype)
    kw = dict(stride=s, dilation=d, padding=((min(1, k - 1), 0),), layout="NLC" if last else "NCL")
    expected, scale = half_oracle(lambda x_, w_: ref.conv_transpose1d(x_, w_, **kw), x, w)
    assert_half_close(spx.conv_transpose1d(x, w, **kw, method=method), expected, scale, dtype, repr(kw))


# ============================================================================ special values


@half_dtypes
@pytest.mark.parametrize("op", ["conv_transpose_direct", "conv_transpose_polyphase", "conv", "subpixel"])
def test_nan_inf_subnormal_and_max_values(dtype: np.dtype, op: str) -> None:
    # Ordinary values are small: float32 sums never overflow (bfloat16's largest value is close
    # to float32's, and where a finite sum overflows would depend on the summation order).
    rng = np.random.default_rng(5)
    nan, inf, ninf, big, nbig, normal, sub, nsub = special_values(dtype)[:8]
    x = (rng.standard_normal((2, 3, 6, 7)) / 64).astype(dtype)
    # one of each per image, far apart (+-max in different images)
    x[0, 0, 1, 1], x[0, 1, 4, 5], x[1, 2, 2, 2], x[0, 2, 3, 0], x[1, 0, 0, 6] = nan, inf, ninf, big, nbig
    x[0, 0, 5, 6], x[1, 1, 3, 3], x[1, 2, 5, 0] = normal, sub, nsub
    specials = special_values(dtype)
    w = (rng.standard_normal((3, 4, 3, 3)) / 4).astype(dtype)
    w[0, 0, 1, 1] = specials[3]  # the largest finite weight: products overflow the format
    w[1, 1, 0, 0] = specials[6]  # a subnormal weight
    if op.startswith("conv_transpose"):
        method = op.split("_")[-1]
        y = spx.conv_transpose2d(x, w, stride=2, padding=1, method=method)
        expected, scale = half_oracle(lambda x_, w_: ref.conv_transpose2d(x_, w_, stride=2, padding=1), x, w)
    elif op == "conv":
        wc = np.ascontiguousarray(w.transpose(1, 0, 2, 3))
        y = spx.conv2d(x, wc, padding=1)
        expected, scale = half_oracle(lambda x_, w_: ref.conv2d(x_, w_, padding=1), x, wc)
    else:
        wc = np.ascontiguousarray(np.concatenate([w.transpose(1, 0, 2, 3)] * 2))
        y = spx.subpixel_conv2d(x, wc, 2, padding=1)
        expected, scale = half_oracle(lambda x_, w_: ref.subpixel_conv2d(x_, w_, 2, padding=1), x, wc)
    assert np.isnan(expected.astype(np.float32)).any() and np.isinf(expected.astype(np.float32)).any()
    assert_half_close(y, expected, scale, dtype, op)


@half_dtypes
def test_non_finite_weights(dtype: np.dtype) -> None:
    # Non-finite weights leave the engine (whose padding would multiply them by zero).
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 9, 9)).astype(dtype)
    w = rng.standard_normal((2, 3, 3, 3)).astype(dtype)
    w[1, 2, 0, 1], w[0, 0, 2, 2] = np.inf, np.nan
    for method in ("direct", "polyphase"):
        y = spx.conv_transpose2d(x, w, stride=2, padding=1, method=method)
        expected, scale = half_oracle(lambda x_, w_: ref.conv_transpose2d(x_, w_, stride=2, padding=1), x, w)
        assert_half_close(y, expected, scale, dtype, method)


@half_dtypes
def test_subnormal_results_are_kept(dtype: np.dtype) -> None:
    tiny = float(special_values(dtype)[6])
    x = np.full((1, 1, 4, 4), 8 * tiny, dtype=np.float64).astype(dtype)
    w = np.full((1, 1, 2, 2), 0.25, dtype=np.float64).astype(dtype)
    y = spx.conv_transpose2d(x, w, stride=2)
    assert y.dtype == dtype and np.all(y.astype(np.float64) == 2 * tiny)


# ============================================================================ the dtype rule


def _dtype_cases():
    cases = [((F16, F16, F16), F16), ((F16, np.float32, F16), np.float32), ((F16, F16, np.float64), np.float64),
             ((np.int16, F16, F16), np.float64), ((np.float32, np.float32, None), np.float32)]
    if BF16 is not None:
        cases += [((BF16, BF16, BF16), BF16), ((BF16, F16, None), np.float32), ((BF16, np.float32, BF16), np.float32),
                  ((BF16, BF16, np.float64), np.float64), ((np.bool_, BF16, None), np.float64)]
    return cases


@pytest.mark.parametrize("dtypes, result", _dtype_cases())
def test_result_dtype_rule(dtypes, result) -> None:
    x_t, w_t, b_t = dtypes
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 2, 5, 5)) * 2).astype(x_t)
    w = rng.standard_normal((2, 3, 3, 3)).astype(w_t)
    b = None if b_t is None else rng.standard_normal(3).astype(b_t)
    y = spx.conv_transpose2d(x, w, b, stride=2)
    assert y.dtype == np.dtype(result)
    assert ref.conv_transpose2d(x, w, b, stride=2).dtype == np.dtype(result)
    assert spx.ConvTranspose2d(w, b, stride=2)(x).dtype == np.dtype(result)


@half_dtypes
def test_out_must_have_the_half_dtype(dtype: np.dtype) -> None:
    x = np.ones((1, 1, 3, 3), dtype)
    w = np.ones((1, 1, 2, 2), dtype)
    out = np.empty((1, 1, 6, 6), np.float32)
    with pytest.raises(ValueError, match=f"out must have dtype {dtype}"):
        spx.conv_transpose2d(x, w, stride=2, out=out)
    good = np.empty((1, 1, 6, 6), dtype)
    assert spx.conv_transpose2d(x, w, stride=2, out=good) is good and np.all(good.astype(np.float32) == 1)


def test_a_layer_keeps_half_weights_and_follows_the_input() -> None:
    w = np.random.default_rng(1).standard_normal((2, 2, 3, 3)).astype(np.float16)
    layer = spx.ConvTranspose2d(w, stride=2)
    x16 = np.random.default_rng(2).standard_normal((1, 2, 4, 4)).astype(np.float16)
    assert layer(x16).dtype == np.float16 and "float16" in repr(layer)
    y32 = layer(x16.astype(np.float32))
    assert y32.dtype == np.float32
    # float32 input: the half weights widened exactly, a float32 result
    np.testing.assert_allclose(y32, ref.conv_transpose2d(x16.astype(np.float32), w.astype(np.float32), stride=2),
                               rtol=1e-5, atol=1e-5)


# ============================================================================ PyTorch half tensors


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_torch_half_tensors(name: str) -> None:
    torch = pytest.importorskip("torch")
    if name == "bfloat16" and BF16 is None:
        pytest.skip("bfloat16 needs ml_dtypes (the [bfloat16] extra)")
    tdtype = getattr(torch, name)
    torch.manual_seed(0)
    module = torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1).to(tdtype)
    x = torch.randn(2, 3, 5, 6).to(tdtype)
    layer = spx.ConvTranspose2d.from_torch(module)
    y = layer(x)
    dtype = F16 if name == "float16" else BF16
    assert y.dtype == dtype
    w, b = module.weight.detach().float().numpy(), module.bias.detach().float().numpy()
    xf = x.float().numpy()
    expected, scale = half_oracle(lambda x_, w_, b_: ref.conv_transpose2d(x_, w_, b_, stride=2, padding=1),
                                  xf.astype(dtype), w.astype(dtype), b.astype(dtype))
    assert_half_close(y, expected, scale, dtype, name)
    # the functional API takes the tensors directly too, and PyTorch agrees within its own rounding
    y2 = spx.conv_transpose2d(x, module.weight.detach(), module.bias.detach(), stride=2, padding=1)
    assert np.array_equal(y2.view(np.uint16), y.view(np.uint16))
    with torch.no_grad():
        theirs = torch.nn.functional.conv_transpose2d(x.float(), module.weight.float(), module.bias.float(), 2, 1)
    assert_half_close(y, theirs.numpy().astype(dtype), scale, dtype, name + " vs torch")


# ============================================================================ rearrangements keep the dtype


def _data_dtypes():
    kinds = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
             np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128, np.clongdouble]
    return [np.dtype(k) for k in kinds] + ([BF16] if BF16 is not None else [])


def _values(rng: np.random.Generator, shape, dtype: np.dtype) -> np.ndarray:
    """Random bits of `dtype` (every bit pattern a dtype can hold, for the integers: values
    past 2**53 in int64), as an array of that dtype."""
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    raw = rng.standard_normal(shape + ((2,) if dtype.kind == "c" else ())) * 1e3
    out = (raw[..., 0] + 1j * raw[..., 1]) if dtype.kind == "c" else raw
    return np.asarray(out).astype(dtype)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", _data_dtypes(), ids=lambda d: d.name)
def test_shuffles_and_zero_insertion_keep_every_dtype_exactly(dtype: np.dtype) -> None:
    rng = np.random.default_rng(8)
    for rank, factor in ((1, (3,)), (2, (2, 3)), (3, (2, 1, 2))):
        spatial = (3, 2, 5)[:rank]
        for last in (False, True):
            layout = ("NCL", "NCHW", "NCDHW")[rank - 1] if not last else ("NLC", "NHWC", "NDHWC")[rank - 1]
            channels = 2 * int(np.prod(factor))
            shape = (2,) + ((spatial + (channels,)) if last else ((channels,) + spatial))
            x = _values(rng, shape, dtype)
            before = x.copy()
            for mode in ("CRD", "DCR"):
                y = spx.pixel_shuffle(x, factor, layout=layout, mode=mode)
                assert _same_bits(y, ref.pixel_shuffle(x, factor, layout=layout, mode=mode)), (rank, layout, mode)
                back = spx.pixel_unshuffle(y, factor, layout=layout, mode=mode)
                assert _same_bits(back, x)
            assert _same_bits(x, before)
        z = spx.zero_insert(x, factor)
        assert _same_bits(z, ref.zero_insert(x, factor))
        assert _same_bits(z[(Ellipsis,) + tuple(slice(None, None, s) for s in factor)].copy(), x)


def test_rearrangements_keep_big_integers_and_small_images() -> None:
    big = np.array([[2**62 + 1, -(2**60) - 3], [7, 2**53 + 1]], dtype=np.int64)
    assert spx.zero_insert(big, 2)[::2, ::2].tolist() == big.tolist()
    img = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(1, 4, 3, 3)
    y = spx.pixel_shuffle(img, 2)
    assert y.dtype == np.uint8 and y.nbytes == img.nbytes


def test_rearrangements_take_non_native_byte_order_and_return_native() -> None:
    x = np.arange(16, dtype=">i4").reshape(1, 4, 2, 2)
    y = spx.pixel_shuffle(x, 2)
    assert y.dtype == np.dtype("=i4") and y.tolist() == spx.pixel_shuffle(x.astype("=i4"), 2).tolist()


def test_rearrangements_refuse_object_arrays() -> None:
    with pytest.raises(TypeError, match="x must have a numeric dtype"):
        spx.pixel_shuffle(np.empty((1, 4, 1, 1), dtype=object), 2)


@pytest.mark.parametrize("dtype", [np.dtype(np.uint8), np.dtype(np.int64), np.dtype(np.complex64)] + ([BF16] if BF16 is not None else []),
                         ids=lambda d: d.name)
def test_dask_rearrangements_keep_the_dtype(dtype: np.dtype) -> None:
    da = pytest.importorskip("dask.array")
    import subpixel_ext.dask as sd

    x = _values(np.random.default_rng(9), (2, 8, 6, 6), dtype)
    dx = da.from_array(x, chunks=(1, 8, 3, 3))
    for got, want in ((sd.pixel_shuffle(dx, 2), spx.pixel_shuffle(x, 2)), (sd.pixel_unshuffle(dx, 2), spx.pixel_unshuffle(x, 2)),
                      (sd.zero_insert(dx, 2), spx.zero_insert(x, 2))):
        assert got.dtype == dtype
        assert _same_bits(np.asarray(got.compute(scheduler="synchronous")), want)


@half_dtypes
def test_dask_convolutions_in_half_precision_match_in_memory(dtype: np.dtype) -> None:
    da = pytest.importorskip("dask.array")
    import subpixel_ext.dask as sd

    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 17, 16)).astype(dtype)
    w = rng.standard_normal((3, 4, 4, 4)).astype(dtype)
    y = sd.conv_transpose2d(da.from_array(x, chunks=(1, 3, 8, 8)), w, stride=2, padding=1)
    assert y.dtype == dtype
    got = np.asarray(y.compute(scheduler="synchronous"))
    assert _same_bits(got, spx.conv_transpose2d(x, w, stride=2, padding=1))
