"""Casts into and out of ``ap_int``/``ap_uint`` against hls4ml's ap_types headers, exhaustively.

A compiled C++ program converts every raw value of narrow sources (``ap_fixed``/``ap_ufixed``
with integer bits 0, 1, inside and beyond the width; ``ap_int``/``ap_uint``) into every
``ap_int``/``ap_uint`` target, and every ``ap_int``/``ap_uint`` source into ``ap_fixed``/``ap_ufixed``
targets of every rounding and overflow mode; :func:`l0emu.fixedpoint.aptypes.cast_target` and
:func:`l0emu.fixedpoint.casts.quantize_cast` must give the same bits. A source with integer bits
below 0 is refused (the header reads an uninitialised value there).
"""

from __future__ import annotations

import itertools
import subprocess

import numpy as np
import pytest
from test_fixed import AP_TYPES, GXX, harness_check, signed_value, target_types, to_raw

from l0emu.errors import SpecError
from l0emu.fixedpoint.aptypes import ApType, cast_target, parse_type
from l0emu.fixedpoint.casts import float_to_mantissa, quantize_cast

# (kind, width, integer): fixed sources with I = 0, 1, inside, = W and > W; integer sources
FIXED_SOURCES = [(kind, w, i) for kind in ("ap_fixed", "ap_ufixed") for w in (1, 3, 6) for i in sorted({0, 1, 2, w, w + 3}) if i <= w + 3]
INT_SOURCES = [(kind, w, w) for kind in ("ap_int", "ap_uint") for w in (1, 3, 6)]
INT_TARGETS = [f"{kind}<{w}>" for kind in ("ap_int", "ap_uint") for w in (1, 2, 3, 5, 8)]
FIXED_TARGETS = [(4, 2, True), (4, 2, False), (3, 5, True), (2, 0, False), (6, 6, True)]


def _source_type(kind, width, integer) -> ApType:
    return parse_type(f"{kind}<{width}>" if kind in ("ap_int", "ap_uint") else f"{kind}<{width},{integer}>")


def _decl(kind, width, integer) -> str:
    return f"{kind}<{width}>" if kind in ("ap_int", "ap_uint") else f"{kind}<{width},{integer}>"


def _program(jobs) -> str:
    lines = ['#include <cstdio>', '#include "ap_fixed.h"', '#include "ap_int.h"', "typedef unsigned long long u64;",
             "template <class D, class S> static void put(const S& s) { D d = s; std::printf(\" %llu\", (u64)d.to_uint64()); }",
             "template <class D, class S> static void put_fixed(const S& s) { D d = s; std::printf(\" %llu\", (u64)d.bits_to_uint64()); }"]
    for k, (source, targets) in enumerate(jobs):
        lines.append(f"static void job_{k}() {{ for (u64 raw = 0; raw < (1ull << {source[1]}); raw++) {{ {_decl(*source)} s; s.range() = raw;")
        lines += [f"  {'put' if t.startswith('ap_int') or t.startswith('ap_uint') else 'put_fixed'}<{t} >(s);" for t in targets]
        lines.append("  std::putchar(10); } }")
    lines.append("int main() {")
    lines += [f"  job_{k}(); std::puts(\"--\");" for k in range(len(jobs))]
    lines.append("  return 0; }")
    return "\n".join(lines) + "\n"


def _fixed_decl(t: ApType) -> str:
    kind = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{kind}<{t.width},{t.integer},AP_{t.rounding},AP_{t.saturation},{t.sat_bits}>"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """{(source, target text): raw target bits per source raw value} from the compiled headers."""
    jobs = [(s, INT_TARGETS) for s in FIXED_SOURCES + INT_SOURCES]
    fixed = [t for target in FIXED_TARGETS for t in target_types(*target)]
    jobs += [(s, [_fixed_decl(t) for t in fixed]) for s in INT_SOURCES]
    workdir = tmp_path_factory.mktemp("int_casts")
    (workdir / "casts.cpp").write_text(_program(jobs))
    flags = ["-std=c++14", "-O1", "-DNDEBUG", "-w", f"-I{AP_TYPES}"]
    subprocess.run([GXX, *flags, str(workdir / "casts.cpp"), "-o", str(workdir / "casts")], check=True, capture_output=True, text=True)
    out = subprocess.run([str(workdir / "casts")], capture_output=True, text=True, check=True).stdout
    blocks = out.split("--\n")
    table = {}
    for (source, targets), block in zip(jobs, blocks):
        rows = [[int(v) for v in line.split()] for line in block.splitlines() if line.strip()]
        for column, target in enumerate(targets):
            table[(source, target)] = [row[column] for row in rows]
    return table, fixed


def _check(source, dst: ApType, raws):
    src = _source_type(*source)
    mantissas = np.array([signed_value(r, src) for r in range(1 << src.width)], dtype=np.int64)
    want = np.array([signed_value(raw, dst) for raw in raws], dtype=np.int64)
    got = quantize_cast(mantissas, src.frac, cast_target(dst, src))
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{src} -> {dst}: mantissa {mantissas[bad[0]]} gives {got[bad[0]]}, the header {want[bad[0]]} ({bad.size} differ)"
    return mantissas.size


@harness_check
def test_every_source_into_ap_int_matches_the_headers(reference):
    table, _ = reference
    checked = 0
    for source, target in itertools.product(FIXED_SOURCES + INT_SOURCES, INT_TARGETS):
        checked += _check(source, parse_type(target), table[(source, target)])
    assert checked > 1000


@harness_check
def test_ap_int_sources_into_every_fixed_mode_match_the_headers(reference):
    table, fixed = reference
    for source in INT_SOURCES:
        for dst in fixed:
            _check(source, dst, table[(source, _fixed_decl(dst))])


def test_no_integer_bit_floors_and_one_truncates_toward_zero():
    """The issue's case: ``ap_fixed<8,1>`` keeps truncating toward zero, ``ap_fixed<8,0>`` gives -1."""
    dst = parse_type("ap_int<3>")
    assert quantize_cast(np.array([-3]), 7, cast_target(dst, parse_type("ap_fixed<8,1>"))).tolist() == [0]
    assert quantize_cast(np.array([-3]), 8, cast_target(dst, parse_type("ap_fixed<8,0>"))).tolist() == [-1]


def test_negative_integer_bits_into_ap_int_are_refused():
    with pytest.raises(SpecError, match=r"ap_fixed<4,-1.*ap_uint<3>.*uninitialised"):
        cast_target(parse_type("ap_uint<3>"), parse_type("ap_fixed<4,-1>"))


def test_ap_int_is_told_apart_from_ap_fixed_w_w():
    assert str(parse_type("ap_int<5>")) == "ap_int<5>"
    assert str(parse_type("ap_uint<1>")) == "ap_uint<1>"
    assert parse_type("ap_int<5>") != parse_type("ap_fixed<5,5,AP_TRN_ZERO,AP_WRAP,0>")
    assert parse_type(str(parse_type("ap_uint<7>"))) == parse_type("ap_uint<7>")


def test_doubles_into_ap_int_truncate_toward_zero():
    assert float_to_mantissa(np.array([-0.75, -1.5, 2.9, 4.0]), parse_type("ap_int<3>")).tolist() == [0, -1, 2, -4]
