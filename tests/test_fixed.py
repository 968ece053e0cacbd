"""The numba fixed-point casts against hls4ml's own ap_fixed headers, bit for bit.

A C++ harness, generated below and compiled once per session with g++ against the
``ap_types`` headers that hls4ml ships, casts raw source mantissas through every target type
and (rounding, overflow) pair and prints the raw target bits; the kernels of l0emu.fixedpoint.casts must
give the same mantissa for every value. Small sources are enumerated exhaustively; wide ones
get hand-picked edges (exact halves around every target boundary, +-max, min, all ones) and
random values. Doubles go through the ``ap_fixed(double)`` constructor the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numba
import numpy as np
import pytest
from conftest import TEST_SCALE

from l0emu.fixedpoint.aptypes import KERNEL_MAX_WIDTH, OVERFLOW_CODES, ROUNDING_CODES, ApType
from l0emu.errors import SpecError
from l0emu.fixedpoint.casts import cast_mantissa, double_to_mantissa, float_to_mantissa, quantize_cast


def _ap_types_dir():
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    return path if (path / "ap_fixed.h").is_file() else None


AP_TYPES = _ap_types_dir()
GXX = shutil.which("g++")

needs_harness = pytest.mark.skipif(
    GXX is None or AP_TYPES is None,
    reason="needs g++ and hls4ml's ap_types headers to compile the ap_fixed reference harness",
)


def harness_check(test):
    """Slow (its size follows L0EMU_TEST_SCALE), needs hls4ml's headers and g++."""
    return pytest.mark.slow(pytest.mark.hls4ml(needs_harness(test)))

# (width, integer, signed): I > W, I < 0, 1-bit, the widths hls4ml infers, up to KERNEL_MAX_WIDTH.
SOURCES = [
    (8, 4, True), (8, 4, False), (6, -2, True), (5, 9, True), (10, 3, False), (1, 1, True),
    (25, 12, True), (48, 20, True), (48, 48, False), (40, -3, True), (63, 30, True),
]
TARGETS = [
    (4, 2, True), (4, 2, False), (3, 0, False), (1, 1, True), (1, 0, False), (2, 5, True),
    (3, -2, False), (6, -1, True), (16, 6, True), (8, 8, False), (48, 24, True), (48, 10, False),
    (63, 40, True),
]
# CI's size of the same check: g++ spends about 0.1 s per instantiated cast, so "small" keeps
# one representative pair per feature and "full" compiles the whole cross product (minutes).
SMALL_TARGETS = [(4, 2, True), (4, 2, False), (1, 1, True), (2, 5, True), (16, 6, True), (48, 24, True)]
SMALL_PAIRS = [
    ((8, 4, True), (4, 2, True)),  # narrower: every rounding carry and overflow, exhaustively
    ((8, 4, False), (4, 2, True)),  # unsigned into signed
    ((8, 4, True), (4, 2, False)),  # signed into unsigned
    ((6, -2, True), (1, 1, True)),  # I < 0, dropped bits beyond the source's width, 1-bit target
    ((5, 9, True), (2, 5, True)),  # I > W on both sides
    ((1, 1, True), (4, 2, False)),  # 1-bit source
    ((10, 3, False), (2, 5, True)),
    ((25, 12, True), (16, 6, True)),  # an hls4ml accumulator into a result type
    ((48, 20, True), (4, 2, True)),
    ((40, -3, True), (16, 6, True)),  # a 41-bit right shift
    ((48, 48, False), (48, 24, True)),  # a left shift, wide
    ((63, 30, True), (48, 24, True)),
    ((8, 4, True), (48, 24, True)),  # widening
]
PAIRS = [(s, t) for s in SOURCES for t in TARGETS] if TEST_SCALE == "full" else SMALL_PAIRS
FLOAT_TARGETS = TARGETS if TEST_SCALE == "full" else SMALL_TARGETS
EXHAUSTIVE_WIDTH = 10
RANDOM_VALUES = 120


def target_types(width, integer, signed):
    """Every (rounding, overflow, N) variant of one target: WRAP with N = 0, 1 and a wider N."""
    overflows = [(name, 0) for name in OVERFLOW_CODES] + [("WRAP", 1), ("WRAP", min(3, width))]
    variants = dict.fromkeys(
        ApType(width, integer, signed, rounding, overflow, n)
        for rounding in ROUNDING_CODES
        for overflow, n in overflows
    )
    return list(variants)


def source_decl(width, integer, signed):
    return f"ap_{'' if signed else 'u'}fixed<{width},{integer}>"


def harness_source(pairs, float_targets):
    """C++ reading lines ``k raw`` and printing the raw bits of every cast of job ``k``."""
    lines = [
        "#include <cstdio>",
        "#include <cstring>",
        '#include "ap_fixed.h"',
        "typedef unsigned long long u64;",
        "template <class D, class S> static void put(const S& s) {",
        '  D d = s; std::printf(" %llu", (u64)d.bits_to_uint64()); }',
        "template <class D> static void put_double(double x) {",
        '  D d = x; std::printf(" %llu", (u64)d.bits_to_uint64()); }',
    ]
    jobs = []
    for k, (source, target) in enumerate(pairs):
        jobs.append(f"job_{k}")
        lines.append(f"static void job_{k}(u64 raw) {{ {source_decl(*source)} s; s.setBits(raw);")
        lines += [f"  put<{t} >(s);" for t in target_types(*target)]
        lines.append("}")
    for k, target in enumerate(float_targets, start=len(pairs)):
        jobs.append(f"job_{k}")
        lines.append(f"static void job_{k}(u64 raw) {{ double x; std::memcpy(&x, &raw, 8);")
        lines += [f"  put_double<{t} >(x);" for t in target_types(*target)]
        lines.append("}")
    lines += [
        "typedef void (*job)(u64);",
        f"static const job jobs[] = {{{', '.join(jobs)}}};",
        "int main() { unsigned k; u64 raw;",
        '  while (std::scanf("%u %llu", &k, &raw) == 2) { jobs[k](raw); std::putchar(10); }',
        "  return 0; }",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def harness(request, tmp_path_factory):
    """Path of the compiled reference harness.

    Compiled once per session, and kept in pytest's cache under the hash of its source,
    flags and headers, so that a rerun skips the minutes g++ needs for the full size.
    NDEBUG as in a release build: with assertions on, ap_private asserts when a cast whose
    dropped bits reach past the source's width reads that (unused) bit.
    """
    source = harness_source(PAIRS, FLOAT_TARGETS)
    flags = ["-std=c++14", "-O1", "-DNDEBUG", "-w", f"-I{AP_TYPES}"]
    key = hashlib.sha256("\n".join([source, *flags, (AP_TYPES / "ap_fixed_base.h").read_text()]).encode())
    cache = getattr(request.config, "cache", None)
    workdir = cache.mkdir("l0emu-ap-cast") if cache is not None else tmp_path_factory.mktemp("ap_cast")
    binary = workdir / f"ap_cast-{key.hexdigest()[:16]}"
    if not binary.is_file():
        cpp = workdir / f"{binary.name}.cpp"
        cpp.write_text(source)
        partial = workdir / f"{binary.name}.partial"
        subprocess.run([GXX, *flags, str(cpp), "-o", str(partial)], check=True, capture_output=True, text=True)
        partial.replace(binary)
    return binary


def run_harness(binary, jobs):
    """``jobs``: list of (job index, raw uint64 values); returns one uint64 array per job."""
    text = "".join(f"{k} {int(raw)}\n" for k, raws in jobs for raw in raws)
    result = subprocess.run([str(binary)], input=text, capture_output=True, text=True, check=True)
    rows = iter(result.stdout.splitlines())
    return [np.array([[int(x) for x in next(rows).split()] for _ in raws], dtype=object) for _, raws in jobs]


def signed_value(raw, target: ApType):
    raw = int(raw) & ((1 << target.width) - 1)
    if target.signed and raw >> (target.width - 1):
        raw -= 1 << target.width
    return raw


def source_range(width, signed):
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


def source_values(source, target, rng):
    """Mantissas of ``source`` that probe ``target``: all of them, or edges plus random ones."""
    low, high = source_range(source[0], source[2])
    if source[0] <= EXHAUSTIVE_WIDTH:
        return list(range(low, high + 1))
    dst = ApType(*target)
    boundaries = {dst.max_mantissa, dst.max_mantissa + 1, dst.min_mantissa, dst.min_mantissa - 1}
    boundaries |= {dst.min_mantissa + 1, -dst.max_mantissa, -dst.max_mantissa - 1, 0, 1, -1, 2, -2}
    shift = (source[0] - source[1]) - dst.frac
    values = {low, low + 1, high, high - 1, 0, 1, -1}
    for b in boundaries:
        if shift > 0:
            half = 1 << (shift - 1)
            values |= {(b << shift) + off for off in (-half - 1, -half, -half + 1, -1, 0, 1, half - 1, half, half + 1)}
        else:
            values |= {(b >> -shift) + off for off in (-1, 0, 1)}
    # Random magnitudes of every bit length, so that small and large values both show up.
    for bits in rng.integers(1, source[0] + 1, size=RANDOM_VALUES).tolist():
        values.add(int(rng.integers(0, 1 << bits)) if low == 0 else int(rng.integers(-(1 << (bits - 1)), 1 << (bits - 1))))
    return sorted(v for v in values if low <= v <= high)


def to_raw(value, width):
    return value & ((1 << width) - 1)


@harness_check
def test_casts_match_ap_fixed_headers(harness):
    rng = np.random.default_rng(20240601)
    values = [source_values(source, target, rng) for source, target in PAIRS]
    jobs = [(k, [to_raw(v, source[0]) for v in vals]) for k, ((source, _), vals) in enumerate(zip(PAIRS, values))]
    expected = run_harness(harness, jobs)
    checked = 0
    for (source, target), vals, reference in zip(PAIRS, values, expected):
        mantissas = np.array(vals, dtype=np.int64)
        src_frac = source[0] - source[1]
        for column, dst in enumerate(target_types(*target)):
            want = np.array([signed_value(raw, dst) for raw in reference[:, column]], dtype=np.int64)
            got = quantize_cast(mantissas, src_frac, dst)
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, (
                f"{source_decl(*source)} -> {dst}: mantissa {mantissas[bad[0]]} gives {got[bad[0]]}, "
                f"the header gives {want[bad[0]]} ({bad.size} of {mantissas.size} differ)"
            )
            checked += mantissas.size
    assert checked >= 5_000 * len(PAIRS)  # hundreds of values through 42 modes per pair


def probe_doubles(target: ApType, rng):
    """Doubles around the target's grid and range: exact halves, quarters, huge, tiny, signed zeros."""
    lsb = np.ldexp(1.0, -target.frac)
    steps = [target.min_mantissa, target.max_mantissa, 0, 1, -1, 2, -2, -target.max_mantissa]
    steps = np.array(steps, dtype=np.float64)
    offsets = np.array([0.0, 0.5, -0.5, 0.25, -0.25, 0.75, 1.5, 1.0, -1.0, 1e-9, -1e-9])
    near = ((steps[:, None] + offsets[None, :]) * lsb).ravel()
    scale = max(abs(target.min_mantissa), target.max_mantissa) * lsb
    randoms = rng.normal(0.0, scale, size=RANDOM_VALUES)
    halves = (np.round(rng.uniform(-scale, scale, size=40) / lsb) + 0.5) * lsb
    # The header converts infinities and NaNs too (an implicit leading one on a 1024 exponent).
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e300, -1e300, 1e-300, 5e-324, -5e-324])
    # Raw bit patterns with exponents all over the range, subnormals and NaN payloads included.
    patterns = rng.integers(0, 2**64, size=60, dtype=np.uint64).view(np.float64)
    doubles = np.concatenate([near, randoms, halves, specials, patterns])
    return doubles.astype(np.float64)


@harness_check
def test_double_constructor_matches_ap_fixed_headers(harness):
    rng = np.random.default_rng(7)
    doubles = {target: probe_doubles(ApType(*target), rng) for target in FLOAT_TARGETS}
    jobs = [(len(PAIRS) + k, doubles[target].view(np.uint64).tolist()) for k, target in enumerate(FLOAT_TARGETS)]
    expected = run_harness(harness, jobs)
    for target, reference in zip(FLOAT_TARGETS, expected):
        values = doubles[target]
        for column, dst in enumerate(target_types(*target)):
            want = np.array([signed_value(raw, dst) for raw in reference[:, column]], dtype=np.int64)
            got = float_to_mantissa(values, dst)
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, (
                f"double -> {dst}: {values[bad[0]]!r} gives {got[bad[0]]}, the header gives {want[bad[0]]} "
                f"({bad.size} of {values.size} differ)"
            )


@harness_check
def test_saturated_extremes_are_the_types_range(harness):
    """ApType.min_mantissa/max_mantissa are what the header saturates to."""
    jobs = [(len(PAIRS) + k, np.array([1e300, -1e300]).view(np.uint64).tolist()) for k in range(len(FLOAT_TARGETS))]
    expected = run_harness(harness, jobs)
    for target, reference in zip(FLOAT_TARGETS, expected):
        types = target_types(*target)
        column = types.index(ApType(*target, "TRN", "SAT"))
        dst = types[column]
        assert [signed_value(raw, dst) for raw in reference[:, column]] == [dst.max_mantissa, dst.min_mantissa]


# Hand-computed cases: readable statements of what each mode does (the harness proves the rest).
@pytest.mark.parametrize(
    ("mantissa", "rounding", "expected"),
    [
        # value m/4 into integers: 1.5 and -1.5, 2.5 and -2.5, 0.25, -0.25, -0.75
        (6, "TRN", 1), (-6, "TRN", -2), (-1, "TRN", -1),
        (6, "TRN_ZERO", 1), (-6, "TRN_ZERO", -1), (-1, "TRN_ZERO", 0),
        (6, "RND", 2), (-6, "RND", -1), (10, "RND", 3), (-10, "RND", -2),
        (6, "RND_ZERO", 1), (-6, "RND_ZERO", -1), (-3, "RND_ZERO", -1),
        (6, "RND_MIN_INF", 1), (-6, "RND_MIN_INF", -2),
        (6, "RND_INF", 2), (-6, "RND_INF", -2), (1, "RND_INF", 0),
        (6, "RND_CONV", 2), (10, "RND_CONV", 2), (-6, "RND_CONV", -2), (-10, "RND_CONV", -2), (-3, "RND_CONV", -1),
    ],
)
def test_rounding_modes_on_halves(mantissa, rounding, expected):
    dst = ApType(8, 8, True, rounding, "WRAP")
    assert quantize_cast(np.array([mantissa]), 2, dst).tolist() == [expected]


@pytest.mark.parametrize(
    ("value", "overflow", "n", "expected"),
    [
        (9, "WRAP", 0, -7), (-9, "WRAP", 0, 7), (9, "SAT", 0, 7), (-9, "SAT", 0, -8),
        (9, "SAT_ZERO", 0, 0), (-9, "SAT_ZERO", 0, 0), (-9, "SAT_SYM", 0, -7), (-8, "SAT_SYM", 0, -7),
        (7, "SAT_SYM", 0, 7), (9, "WRAP", 1, 1), (-9, "WRAP", 1, -1),
    ],
)
def test_overflow_modes_on_4_bits(value, overflow, n, expected):
    dst = ApType(4, 4, True, "TRN", overflow, n)
    assert quantize_cast(np.array([value]), 0, dst).tolist() == [expected]


def test_rounding_carry_into_overflow():
    """7.5 rounds to 8, one past ap_fixed<4,4>'s max: SAT clamps, WRAP wraps, SAT_ZERO zeroes."""
    assert quantize_cast([15], 1, ApType(4, 4, True, "RND", "SAT")).tolist() == [7]
    assert quantize_cast([15], 1, ApType(4, 4, True, "RND", "WRAP")).tolist() == [-8]
    assert quantize_cast([15], 1, ApType(4, 4, True, "RND", "SAT_ZERO")).tolist() == [0]
    assert quantize_cast([15], 1, ApType(4, 4, True, "TRN", "SAT")).tolist() == [7]


@pytest.mark.parametrize("shift", [0, 1, 62, 63, 64, 65, 200, 2000])
def test_extreme_shifts_stay_exact(shift):
    """Shifts past int64's width: everything left-shifted out wraps to 0 or saturates."""
    extremes = np.array([np.iinfo(np.int64).min, -1, 1, np.iinfo(np.int64).max], dtype=np.int64)
    narrow = ApType(48, 10, True, "RND_CONV", "SAT")
    right = quantize_cast(extremes, shift, narrow)
    left = quantize_cast(extremes, -shift, narrow)
    wrap_left = quantize_cast(extremes, -shift, ApType(48, 10, True, "TRN", "WRAP"))
    exact_right = [_reference_cast(int(m), shift, narrow) for m in extremes]
    exact_left = [_reference_cast(int(m), -shift, narrow) for m in extremes]
    assert right.tolist() == exact_right
    assert left.tolist() == exact_left
    if -shift + narrow.frac >= 64:
        assert wrap_left.tolist() == [0, 0, 0, 0]


def _reference_cast(m, src_frac, dst):
    """RND_CONV + SAT by Python's unbounded integers: the mathematical definition."""
    shift = src_frac - dst.frac
    if shift <= 0:
        q = m << -shift
    else:
        floor, remainder = m >> shift, m & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        q = floor + (remainder > half or (remainder == half and floor & 1))
    return min(max(q, dst.min_mantissa), dst.max_mantissa)


def test_cast_mantissa_inlines_into_njit_code():
    """The emulator calls the scalar kernel from its own njit code with ApType.codes()."""
    # numba cannot inline a call made with *args: the six codes go in as separate arguments.
    width, frac, signed, rounding, overflow, sat_bits = ApType(6, 2, False, "RND_CONV", "SAT").codes()

    @numba.njit
    def relu_then_cast(m):
        return cast_mantissa(max(m, 0), 5, width, frac, signed, rounding, overflow, sat_bits)

    assert relu_then_cast(-40) == 0
    assert relu_then_cast(16) == 8  # 16/32 = 0.5 is 8 steps of 1/16
    assert relu_then_cast(17) == 8  # 8.5 steps: ties go to the even 8
    assert relu_then_cast(19) == 10  # 9.5 steps: ties go to the even 10
    assert relu_then_cast(1000) == 63  # 31.25 saturates at 63/16


def test_double_to_mantissa_inlines_into_njit_code():
    width, frac, signed, rounding, overflow, sat_bits = ApType(8, 3, True, "RND", "SAT").codes()

    @numba.njit
    def convert(x):
        bits = np.array([x], dtype=np.float64).view(np.int64)[0]
        return double_to_mantissa(bits, width, frac, signed, rounding, overflow, sat_bits)

    assert convert(1.0) == 32
    assert convert(-0.015625) == 0  # -1/64 is -0.5 steps of 1/32: RND goes up to 0
    assert convert(100.0) == 127


def test_codes_refuse_widths_beyond_the_kernels():
    with pytest.raises(SpecError, match=f"up to {KERNEL_MAX_WIDTH} bits"):
        ApType(64, 32).codes()


def test_quantize_cast_keeps_shape_and_refuses_floats():
    dst = ApType(8, 4, True, "RND", "SAT")
    assert quantize_cast(np.arange(6).reshape(2, 3), 1, dst).shape == (2, 3)
    assert float_to_mantissa(np.zeros((3, 1)), dst).shape == (3, 1)
    with pytest.raises(TypeError, match="mantissas must be integers"):
        quantize_cast(np.array([0.5]), 1, dst)
