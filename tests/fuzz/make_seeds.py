#!/usr/bin/env python3
"""Writes the seed corpus (corpus/) and the regression inputs (regressions/) of fuzz_compute.cpp.

Each file is one scenario in the fuzz target's byte format. The Enc class below mirrors the
decoder of fuzz_compute.cpp read for read (same order, same tables): when the decoder changes,
change it here too and rerun this script (python3 tests/fuzz/make_seeds.py), then check that the
corpus still replays clean and every regression still reproduces its finding on the unfixed
library (CULOSS_FUZZ_VERBOSE=1 prints the decoded scenario).

corpus/      ordinary and refused calls of every kind, dtype and entry point: every file must
             replay without a finding (ctest fuzz_replay).
regressions/ inputs that found library bugs; they must replay clean once the bug is fixed. The
             same bugs have readable reproducers in regression_test.cpp.
"""
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Tables of fuzz_compute.cpp, in its order.
SMALL_INTS = [0, 1, 2, -1, 3, -2, 4, 5]
SPECIAL_INTS = [-100, 255, 64, -64, 65, -65, 2**31 - 1, -2**31, 2**31, 2**32, 2**63 - 1, -2**63,
                23, 24, 1000, -3]
COMMON_DOUBLES = [0.5, 0.0, 1.0, 1e-5, 0.25, 0.75, 2.0, 0.3, 0.7, 1e-7, 10.0, 0.1, 0.9, 3.0,
                  1e-3, 5.0]
EXTREME_DOUBLES = ["nan", "inf", "-inf", "-0", -1.0, -0.5, 1e308, -1e308, 1e-300, 5e-324,
                   1 - 1e-16, 1e4, 100.0, 1e30, 0.9999999, 1.0000001, 50.0, 1e-30]
SMALL_EXTENTS = [2, 1, 3, 4, 2, 1, 5, 0, 3, 7, 8, 16, 1, 2, 6, 0]
HUGE_EXTENTS = [2**31, 2**31 + 1, 2**32, 2**40, 2**61, 2**62, 2**62 + 1, 2**63 - 1, -1, -2**63,
                2**20, 65536, 2**61 + 1, 2**33, -2, 4096]
NDIMS = [3, 2, 4, 2, 3, 5, 1, 0, 6, 65, -1, 64, 3, 4, 2, 70]
OFFSETS = [0, 0, 0, 0, 8, 16, 64, 4096, 1 << 20, 3, 1 << 40, 1]
SET_FLOATS_COUNTS = [1, 2, 3, 4, 5, 0, -1, 1 << 24, (1 << 24) + 1, 64, 6, 8]
SCALES = [1.0, 0.5, -1.0, 0.0, 2.0, 1e3, "nan", "inf", "-inf", 1e308, 5e-324, -0.0, 100.0,
          1e-3, 0.25, 3.0]
DEVICES = {"cpu": 0, "cuda": 240, "cpu3": 241, "cuda1": 242, "type0": 243, "cudahost": 244,
           "managed": 245, "type255": 246, "cpu-1": 247, "rocm": 248, "type17": 249, "type-1": 250}
# dtype selector byte: < 160 the role's natural dtype; 160.. other float dtypes (targets: even
# bytes floats, odd bytes index dtypes); >= 200 odd dtypes (odd[byte % 16]).
FLOAT_SEL = {"f32": 0, "f64": 1, "f16": 2, "bf16": 3}
TARGET_INDEX_SEL = {"i64": 163, "u8": 165, "i32": 161}
ODD_DTYPES = {"i64": 208, "u8": 209, "f32x2": 210, "f8": 211, "code7": 212, "bits0": 213,
              "lanes0": 214, "complex": 215, "bool": 216, "i16": 217, "u64": 218, "bf32": 219,
              "f128": 220, "i8": 221, "f32x4": 222, "all255": 223}

# Kinds and parameters (culoss.h).
(DICE, JACCARD, TVERSKY, FOCAL_TVERSKY, GDL, BCE, CE, FOCAL, COMBO, MARGINAL, HINGE, LSOFTMAX, SUM,
 MCC) = range(1, 15)
HAUSDORFF_DT, BOUNDARY, CLDICE = 15, 16, 17
(ACTIVATION, CLASS_AXIS, REDUCTION, IGNORE_INDEX, SMOOTH_NR, SMOOTH_DR, SQUARED, BATCH, INCLUDE_BG,
 CLASS_WEIGHTS, ALPHA, BETA, GAMMA, WEIGHT_TYPE, POS_WEIGHT, CLASS_BALANCE, LABEL_SMOOTHING,
 CE_RATIO, PER_IMAGE, CLASSES, SKIP_EMPTY, AVERAGE, CHECK_TARGETS, SOFT_LABEL) = range(1, 25)
# Kinds and parameters of 0.2: bytes of their own (fuzz_compute.cpp's kAddedKinds, kAddedParams),
# so that every byte of 0.1 keeps its meaning and the corpus its scenarios.
TOPK_CE = 18
TOP_FRACTION = 27
SPACING, ITERATIONS = 25, 26
ADDED_KINDS = {TOPK_CE: 0xF8, MCC: 0xF9, HAUSDORFF_DT: 0xFA, BOUNDARY: 0xFB, CLDICE: 0xFC}
ADDED_PARAMS = {TOP_FRACTION: 237, SOFT_LABEL: 238, SPACING: 239, ITERATIONS: 240}


def param_byte(param):
    if 1 <= param <= 23:
        return param - 1
    if param in ADDED_PARAMS:
        return ADDED_PARAMS[param]
    return 230 + [0, 99, -1, 100].index(param)


def double_bits(v):
    if v == "nan":
        v = float("nan")
    elif v == "inf":
        v = float("inf")
    elif v == "-inf":
        v = float("-inf")
    elif v == "-0":
        v = -0.0
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def same(a, b):
    return double_bits(a) == double_bits(b)


class Enc:
    def __init__(self):
        self.b = bytearray()

    def byte(self, v):
        self.b.append(v & 0xFF)

    def pick(self, i):  # Reader::pick(n) with the result i < n
        self.byte(i)

    def u64(self, v):
        self.b += struct.pack("<Q", v % 2**64)

    def int_(self, v):  # pick_int
        if v in SMALL_INTS:
            self.byte(SMALL_INTS.index(v))
        elif v in SPECIAL_INTS:
            self.byte(200 + SPECIAL_INTS.index(v))
        else:
            self.byte(255)
            self.u64(v)

    def double(self, v):  # pick_double
        for i, c in enumerate(COMMON_DOUBLES):
            if same(c, v):
                return self.byte(i)
        for i, c in enumerate(EXTREME_DOUBLES):
            if same(c, v):
                return self.byte(192 + i)
        for s in range(128, 192):
            if same((s - 128) / 63.0, v):
                return self.byte(s)
        self.byte(255)
        self.u64(double_bits(v))

    def extent(self, e):
        if e in SMALL_EXTENTS:
            self.byte(SMALL_EXTENTS.index(e))
        else:
            self.byte(224 + HUGE_EXTENTS.index(e))

    # ---- descriptor
    def desc(self, kind, ops=(), terms=(), add_self=False, depth=0):
        self.byte(kind - 1 if 1 <= kind <= 13 else
                  ADDED_KINDS.get(kind) or {0: 240, 99: 241, -1: 242}[kind])
        self.byte(0)  # create into a real handle
        assert len(ops) < 8
        self.pick(len(ops))
        for op in ops:
            what, param = op[0], op[1]
            if what == "int":
                self.pick(0)
                self.byte(param_byte(param))
                self.int_(op[2])
            elif what == "float":
                self.pick(3)
                self.byte(param_byte(param))
                self.double(op[2])
            elif what == "floats":
                values = op[2]
                self.pick(4)
                self.byte(param_byte(param))
                if values is None:  # NULL values, count 1
                    self.pick(0)
                    self.pick(2)
                else:
                    self.pick(SET_FLOATS_COUNTS.index(len(values)))
                    self.pick(1)
                    self.byte(0)  # guarded buffer at its page's end
                    for v in values:
                        self.double(v)
            elif what == "get_int":
                self.pick(5)
                self.byte(param_byte(param))
                self.byte(0)
            elif what == "get_float":
                self.pick(6)
                self.byte(param_byte(param))
                self.byte(0)
            elif what == "null_handle":
                self.pick(7)
                self.byte(param_byte(param))
            else:
                raise ValueError(what)
        if kind != SUM:
            self.byte(0xFC if add_self else 0)
        elif depth < 2:
            self.pick(len(terms))
            for t in terms:
                tkind, tops, weight = t[0], t[1], t[2]
                self.desc(tkind, tops, t[3] if len(t) > 3 else (), depth=depth + 1)
                self.pick(t[4] if len(t) > 4 else 0)  # how: 0 the term, 6 NULL, 7 the sum
                if same(weight, 1.0):
                    self.pick(0)
                else:
                    self.pick(3)
                    self.double(weight)

    # ---- tensors
    def dtype(self, sel):
        self.byte(sel)

    def layout(self, strides=0, data=0, offset=0):
        self.byte(strides)  # < 200: NULL strides; 200 + k: mode 1 + k % 5
        self.byte(data)  # >= 250 NULL data; bit 0: at the page start; 0x70: misaligned
        self.pick(offset)


def scenario(mode=0, flags=0x03, desc=None, input=None, target=None, pw=None, loss_out=None,
             grad=None, scale=1.0, alias=0, alias_shift=0, ws=0, ws_byte=None, stats=None,
             strides=(), poke=None):
    """Builds one input. Tensor specs are dicts; see the corpus below for the keys."""
    e = Enc()
    e.pick(mode)
    e.byte(flags)
    if flags & 4:
        e.int_(poke if poke is not None else 0)
    kind, ops, terms = desc
    e.desc(kind, ops, terms)
    # input
    i = input
    e.pick(i.get("ndim_sel", NDIMS.index(len(i["shape"]))))
    e.byte(0xFF if i.get("null") else 0)
    for x in i["shape"]:
        e.extent(x)
    e.dtype(i.get("dtype", 0))
    e.byte(i.get("device", 0))
    e.layout(*i.get("layout", (0, 0, 0)))
    e.byte(0)  # shape pointer set
    e.pick(i.get("fill", 0))
    e.u64(i.get("seed", 1))
    # target: how 0 index, 1 dense, 3 NULL, 4 index with a wrong extent, 5/7 dense
    t = target
    e.pick(t.get("how", 0))
    if t.get("how", 0) == 4:
        e.pick(t.get("bump_axis", 0))
    e.dtype(t.get("dtype", 0))
    e.byte(t.get("device", 0))
    e.layout(*t.get("layout", (0, 0, 0)))
    e.pick(t.get("fill", 0))
    e.u64(t.get("seed", 2))
    # pixel weight: how >= 5 passes one
    p = pw or {}
    e.pick(p.get("how", 0))
    e.dtype(p.get("dtype", 0))
    e.byte(p.get("device", 0))
    e.layout(*p.get("layout", (0, 0, 0)))
    e.pick(p.get("fill", 0))
    e.u64(p.get("seed", 3))
    # loss_out: how 0 (), 1 (1,), 2 pixels, 3 input, 4 (N, C), 5 (C,), 6 (N,), 7 (2,), 8 (1, 1), 9 NULL
    o = loss_out or {}
    e.pick(o.get("how", 0))
    e.dtype(o.get("dtype", 0))
    sel = o.get("dtype", 0)
    if sel < 160 or (sel < 200 and sel % 4 == 0):  # float32: one more byte, odd for float64
        e.byte(1 if o.get("f64") else 0)
    e.byte(o.get("device", 0))
    e.layout(*o.get("layout", (0, 0, 0)))
    # grad: how 0/7 NULL, 1 input dtype, 2 float32, 6 a wrong shape
    g = grad if grad is not None else {"how": 1}
    e.pick(g.get("how", 1))
    e.dtype(g.get("dtype", 0))
    e.byte(g.get("device", 0))
    e.layout(*g.get("layout", (0, 0, 0)))
    e.pick(SCALES.index(scale) if not isinstance(scale, float) or not math.isnan(scale) else 6)
    e.pick(alias)
    e.pick(alias_shift)
    e.pick(ws)
    for s in strides:  # pick_int per stride the decoder asks for
        e.int_(s)
    if mode >= 5:
        st = stats or {}
        e.byte(0)  # count pointer
        e.pick(st.get("how", 0))
        e.dtype(st.get("dtype", 0))
        e.byte(st.get("device", 0))
        e.layout(*st.get("layout", (0, 0, 0)))
        if mode == 7:
            e.pick(st.get("fill", 0))
        e.u64(st.get("seed", 4))
    if ws == 5:
        e.byte(ws_byte if ws_byte is not None else 0)
    return bytes(e.b)


F = FLOAT_SEL
IDX = TARGET_INDEX_SEL


def dense(sel):  # a dense target dtype selector byte
    return 160 + 2 * FLOAT_SEL[sel]


CORPUS = {
    # ordinary calls, one or more per kind
    "dice_defaults": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4, 4]}, target={}),
    "dice_batch_nobg_f64": dict(
        desc=(DICE, [("int", INCLUDE_BG, 0), ("int", BATCH, 1), ("int", SQUARED, 1)], []),
        input={"shape": [3, 4, 5], "dtype": 160 + F["f64"]}, target={"dtype": IDX["u8"]},
        loss_out={"how": 1, "f64": True}),
    "jaccard_sigmoid_dense_pw": dict(
        desc=(JACCARD, [("int", ACTIVATION, 1), ("float", SMOOTH_NR, 0.5)], []),
        input={"shape": [2, 2, 7], "fill": 1}, target={"how": 1, "fill": 0},
        pw={"how": 5, "fill": 0}),
    "tversky_micro_none_f16": dict(
        desc=(TVERSKY, [("int", AVERAGE, 1), ("int", REDUCTION, 2), ("float", ALPHA, 0.3),
                        ("float", BETA, 0.7)], []),
        input={"shape": [3, 3, 6], "dtype": 160 + F["f16"]}, target={"dtype": IDX["i32"]},
        loss_out={"how": 6}),
    "mcc_soft_micro_batch_pw": dict(
        desc=(MCC, [("int", SOFT_LABEL, 1), ("int", AVERAGE, 1), ("int", BATCH, 1),
                    ("float", SMOOTH_DR, 0.0)], []),
        input={"shape": [2, 3, 5], "fill": 1}, target={"how": 1, "fill": 0},
        pw={"how": 5, "fill": 0}),
    "mcc_sigmoid_none_f16": dict(
        desc=(MCC, [("int", ACTIVATION, 1), ("int", REDUCTION, 2), ("int", SKIP_EMPTY, 1)], []),
        input={"shape": [2, 1, 6], "dtype": 160 + F["f16"]}, target={"how": 1, "fill": 1},
        loss_out={"how": 6}),
    "soft_label_refused_with_squared": dict(
        desc=(DICE, [("int", SQUARED, 1), ("int", SOFT_LABEL, 1), ("int", SQUARED, 0),
                     ("int", SOFT_LABEL, 1)], []),
        input={"shape": [2, 3, 4]}, target={}),
    "focal_tversky_nhwc": dict(
        desc=(FOCAL_TVERSKY, [("int", CLASS_AXIS, -1), ("float", GAMMA, 0.75)], []),
        input={"shape": [2, 3, 3, 4], "fill": 2}, target={}),
    "gdl_weights_none": dict(
        desc=(GDL, [("int", WEIGHT_TYPE, 1), ("int", REDUCTION, 2),
                    ("floats", CLASS_WEIGHTS, [1.0, 2.0, 0.5])], []),
        input={"shape": [2, 3, 8], "dtype": 160 + F["bf16"]}, target={}, loss_out={"how": 6}),
    "bce_batch_frequency": dict(
        desc=(BCE, [("int", CLASS_BALANCE, 1), ("floats", POS_WEIGHT, [2.0, 0.5]),
                    ("float", LABEL_SMOOTHING, 0.1)], []),
        input={"shape": [2, 2, 6]}, target={"how": 1, "fill": 1}, pw={"how": 5, "fill": 1},
        loss_out={"f64": True}),
    "bce_probabilities_none": dict(
        desc=(BCE, [("int", ACTIVATION, 0), ("int", REDUCTION, 2)], []),
        input={"shape": [2, 1, 8], "fill": 5}, target={"how": 1, "dtype": dense("f16")},
        loss_out={"how": 3}),
    "ce_ignore_smoothing_f16": dict(
        desc=(CE, [("int", IGNORE_INDEX, 255), ("float", LABEL_SMOOTHING, 0.1),
                   ("floats", CLASS_WEIGHTS, [1.0, 2.0, 0.5])], []),
        input={"shape": [2, 3, 5], "dtype": 160 + F["f16"]},
        target={"dtype": IDX["u8"], "fill": 1}, grad={"how": 2}),
    "ce_none_pixels": dict(desc=(CE, [("int", REDUCTION, 2)], []), input={"shape": [2, 4, 3, 2]},
                           target={"dtype": IDX["i64"]}, loss_out={"how": 2}),
    "focal_softmax_saturated": dict(
        desc=(FOCAL, [("int", ACTIVATION, 2), ("float", GAMMA, 3.0)], []),
        input={"shape": [2, 4, 3, 3], "dtype": 160 + F["bf16"], "fill": 2}, target={}),
    "focal_sigmoid_none": dict(
        desc=(FOCAL, [("int", REDUCTION, 2), ("float", ALPHA, -1.0)], []),
        input={"shape": [2, 2, 4]}, target={"how": 1, "fill": 0}, loss_out={"how": 3}),
    "combo": dict(desc=(COMBO, [("float", CE_RATIO, 0.3), ("float", ALPHA, 0.7)], []),
                  input={"shape": [2, 1, 8]}, target={"how": 1, "dtype": ODD_DTYPES["u8"], "fill": 1}),
    "marginal_ce_f64": dict(desc=(MARGINAL, [], []), input={"shape": [2, 4, 6], "dtype": 160 + F["f64"]},
                            target={"dtype": IDX["i32"]}),
    "lovasz_hinge_per_image_none": dict(
        desc=(HINGE, [("int", PER_IMAGE, 1), ("int", REDUCTION, 2)], []),
        input={"shape": [2, 1, 16]}, target={"how": 1, "fill": 1}, loss_out={"how": 4}),
    "lovasz_softmax_all_f16": dict(
        desc=(LSOFTMAX, [("int", CLASSES, 0)], []), input={"shape": [2, 3, 7], "dtype": 160 + F["f16"]},
        target={"fill": 1}),
    "hausdorff_dt_3d_spacing": dict(
        desc=(HAUSDORFF_DT, [("floats", SPACING, [0.5, 1.0, 0.5]), ("int", REDUCTION, 2)], []),
        input={"shape": [2, 3, 3, 4, 5]}, target={}, loss_out={"how": 3}),
    "boundary_sigmoid_dense": dict(
        desc=(BOUNDARY, [("int", ACTIVATION, 1)], []), input={"shape": [2, 2, 7, 6]},
        target={"how": 1, "fill": 1}),
    "cldice_iterations_f16": dict(
        desc=(CLDICE, [("int", ITERATIONS, 5), ("int", AVERAGE, 1)], []),
        input={"shape": [2, 3, 8, 7], "dtype": 160 + F["f16"]}, target={}),
    "cldice_one_axis_refused": dict(desc=(CLDICE, [], []), input={"shape": [2, 3, 8]}, target={}),
    "sum_dice_cldice_boundary": dict(
        desc=(SUM, [], [(DICE, [], 1.0), (CLDICE, [], 0.5), (BOUNDARY, [], 0.25)]),
        input={"shape": [2, 3, 6, 5]}, target={}),
    "stats_round_trip_cldice": dict(mode=6, desc=(CLDICE, [], []), input={"shape": [2, 3, 5, 6]},
                                    target={}, loss_out={"f64": True}),
    "sum_dice_ce": dict(
        desc=(SUM, [("int", CHECK_TARGETS, 0)],
              [(DICE, [("int", INCLUDE_BG, 0)], 1.0), (CE, [], 0.5)]),
        input={"shape": [2, 3, 6]}, target={}),
    "topk_ce_fraction_ignore_f16": dict(
        desc=(TOPK_CE, [("float", TOP_FRACTION, 0.25), ("int", IGNORE_INDEX, 255),
                        ("floats", CLASS_WEIGHTS, [1.0, 2.0, 0.5])], []),
        input={"shape": [2, 3, 5], "dtype": 160 + F["f16"]},
        target={"dtype": IDX["u8"], "fill": 1}, grad={"how": 2}),
    "topk_ce_refusals": dict(
        desc=(TOPK_CE, [("float", TOP_FRACTION, 0.0), ("float", TOP_FRACTION, 1.0000001),
                        ("int", REDUCTION, 1), ("float", TOP_FRACTION, 1.0)], []),
        input={"shape": [2, 3, 4]}, target={}),
    "topk_ce_stats_refused": dict(mode=5, flags=0x02, desc=(TOPK_CE, [], []),
                                  input={"shape": [2, 3, 4]}, target={}),
    "sum_dice_topk_ce": dict(
        desc=(SUM, [], [(DICE, [], 1.0), (TOPK_CE, [("float", TOP_FRACTION, 0.1)], 1.0)]),
        input={"shape": [2, 3, 4, 4]}, target={}),
    "sum_bce_focal_dense": dict(
        desc=(SUM, [], [(BCE, [], 1.0), (FOCAL, [], 2.0), (TVERSKY, [("int", ACTIVATION, 1)], 0.25)]),
        input={"shape": [2, 2, 5]}, target={"how": 1}),
    # in place, workspace, determinism, entry points
    "inplace_grad_f16": dict(flags=0x03, desc=(DICE, [], []),
                             input={"shape": [2, 3, 6], "dtype": 160 + F["f16"]}, target={}, alias=1),
    "workspace_unaligned_recheck": dict(flags=0x01 | 0x02 | 0x20, desc=(JACCARD, [], []),
                                        input={"shape": [2, 3, 6]}, target={}, ws=1),
    "stats_export_dice_batch": dict(mode=5, desc=(DICE, [("int", BATCH, 1)], []),
                                    input={"shape": [2, 3, 5]}, target={}),
    "stats_round_trip_ce": dict(mode=6, desc=(CE, [], []), input={"shape": [2, 3, 5]}, target={},
                                loss_out={"f64": True}),
    "stats_round_trip_lovasz_per_image": dict(
        mode=6, desc=(LSOFTMAX, [("int", PER_IMAGE, 1)], []), input={"shape": [2, 3, 5]},
        target={}, loss_out={"f64": True}),
    "stats_from_garbage": dict(mode=7, desc=(JACCARD, [], []), input={"shape": [2, 3, 5]},
                               target={}, stats={"fill": 1}),
    # empty tensors
    "empty_batch_null_data": dict(desc=(DICE, [], []),
                                  input={"shape": [0, 3, 4], "layout": (0, 250, 0)},
                                  target={"layout": (0, 250, 0)}),
    "empty_spatial_lovasz": dict(desc=(HINGE, [], []), input={"shape": [2, 1, 0]},
                                 target={"how": 1}),
    # values the contract covers: saturated logits, empty masks, everything ignored
    "saturated_empty_masks": dict(desc=(DICE, [("float", SMOOTH_NR, 0.0), ("float", SMOOTH_DR, 0.0)], []),
                                  input={"shape": [2, 2, 6], "fill": 4}, target={"how": 1, "fill": 2}),
    "saturated_sigmoid_zero_smoothing_p0": dict(
        desc=(JACCARD, [("int", ACTIVATION, 1), ("float", SMOOTH_NR, 0.0), ("float", SMOOTH_DR, 0.0)], []),
        input={"shape": [2, 1, 6], "fill": 4, "seed": 0}, target={"how": 1, "fill": 2}),
    "unchecked_bad_labels": dict(desc=(CE, [("int", CHECK_TARGETS, 0)], []),
                                 input={"shape": [2, 3, 7]}, target={"fill": 4}),
    "checked_bad_labels_refused": dict(desc=(CE, [], []), input={"shape": [2, 3, 7]},
                                       target={"fill": 4}),
    "checked_bad_dense_refused": dict(desc=(BCE, [], []), input={"shape": [2, 2, 3]},
                                      target={"how": 1, "fill": 4}),
    # refusals
    "null_target": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4]}, target={"how": 3}),
    "null_loss_out": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4]}, target={},
                          loss_out={"how": 9}),
    "misaligned_input": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4], "layout": (0, 0x72, 0)},
                             target={}),
    "odd_offset_input": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4], "layout": (0, 0, 9)},
                             target={}),
    "zero_strides": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4], "layout": (203, 0, 0)},
                         target={}),
    "random_strides": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4], "layout": (202, 0, 0)},
                           target={}, strides=(1, 5, 3)),
    "bad_input_dtypes": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4], "dtype": ODD_DTYPES["f32x2"]},
                             target={}),
    "bad_target_dtype": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4]},
                             target={"dtype": ODD_DTYPES["u64"]}),
    "cuda_device_target": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4]},
                               target={"device": DEVICES["cuda"]}),
    "managed_device_input": dict(desc=(DICE, [], []),
                                 input={"shape": [2, 3, 4], "device": DEVICES["managed"]}, target={}),
    "grad_overlaps_input": dict(desc=(CE, [], []), input={"shape": [2, 3, 4]}, target={}, alias=3),
    "loss_out_over_target": dict(desc=(CE, [], []), input={"shape": [2, 3, 4]}, target={}, alias=7),
    "grad_f32_over_f16_input": dict(desc=(DICE, [], []),
                                    input={"shape": [2, 3, 4], "dtype": 160 + F["f16"]}, target={},
                                    alias=2),
    "short_workspace": dict(flags=0x02, desc=(DICE, [], []), input={"shape": [2, 3, 4]},
                            target={}, ws=2),
    "nan_grad_scale": dict(desc=(DICE, [], []), input={"shape": [2, 3, 4]}, target={},
                           scale=float("nan")),
    "huge_shape_null_data": dict(desc=(DICE, [], []), input={"shape": [2**31, 2**31, 2]},
                                 target={}),
    "negative_extent": dict(desc=(DICE, [], []), input={"shape": [2, -1, 4]}, target={}),
    "ndim_65": dict(desc=(DICE, [], []), input={"shape": [2, 3], "ndim_sel": 9}, target={}),
    "parameter_refusals": dict(
        desc=(FOCAL, [("float", GAMMA, "nan"), ("int", REDUCTION, 7), ("floats", CLASS_WEIGHTS, None),
                      ("int", 100, 1), ("get_float", REDUCTION), ("null_handle", BATCH),
                      ("floats", POS_WEIGHT, [1.0])], [], ),
        input={"shape": [2, 3, 4]}, target={}),
    "sum_into_itself": dict(
        desc=(SUM, [], [(DICE, [], 1.0), (CE, [], 0.5, (), 7)]), input={"shape": [2, 3, 4]},
        target={}),
    "sum_refusals": dict(
        desc=(SUM, [], [(DICE, [], 1.0), (CE, [("int", REDUCTION, 2)], 1.0),
                        (LSOFTMAX, [], 1.0), (DICE, [], "inf")]),
        input={"shape": [2, 3, 4]}, target={}),
    "poke_status_strings": dict(flags=0x04 | 0x18, poke=1000, desc=(DICE, [], []),
                                input={"shape": [2, 3, 4]}, target={}),
}

# Inputs that found bugs in the library (see regression_test.cpp for readable reproducers).
REGRESSIONS = {
    # Workspace arithmetic wraps for an empty input with 2^61 classes: size_t(2^61) * 8 == 0,
    # so the library carves (and allocates) a few bytes, then finalize writes C doubles: a heap
    # overflow.
    "workspace_size_wraps_for_2pow61_classes": dict(
        desc=(CE, [], []), input={"shape": [1, 2**61, 0]}, target={}),
    # N * C * statistics slots overflows int64 for an empty input (N = C = 2^31, P = 0): signed
    # overflow in carve().
    "statistics_size_overflows_int64": dict(
        desc=(DICE, [], []), input={"shape": [2**31, 2**31, 0]}, target={}),
    # pre * inner overflows int64 in validate_call for an empty input (N = 0, 2^40 x 2^40).
    "pixel_count_overflows_for_empty_input": dict(
        desc=(DICE, [], []), input={"shape": [0, 1, 2**40, 2**40]}, target={}),
    # The compact-strides check multiplied the extents (2^40 x 2^40) of an empty input: signed
    # overflow in parse() (fixed: empty tensors skip the check).
    "strides_check_overflows_for_empty_input": dict(
        desc=(DICE, [], []), input={"shape": [0, 2**40, 2**40], "layout": (200, 0, 0)},
        target={}),
    # A device type outside the DLPack enum (255) is loaded as a DLDeviceType: UB in C++.
    "device_type_outside_the_enum": dict(
        desc=(DICE, [], []), input={"shape": [2, 3, 4], "device": DEVICES["type255"]}, target={}),
    # NULL data (an empty tensor) plus a byte_offset: pointer arithmetic on NULL.
    "null_data_plus_byte_offset": dict(
        desc=(DICE, [], []), input={"shape": [0, 3, 4], "layout": (0, 250, 4)}, target={}),
    # ... and with a misaligned byte_offset (3 on an int64 target of an empty input): once NULL
    # data stayed NULL, the alignment check saw an aligned NULL and accepted it; it now checks
    # data + byte_offset as integers, and refuses it as before.
    "null_data_misaligned_byte_offset": dict(
        desc=(DICE, [], []), input={"shape": [5, 4, 0]},
        target={"dtype": IDX["i64"], "layout": (0, 250, 9)}),
    # Cross-entropy, REDUCTION=NONE, an empty batch, culoss_compute_stats with a workspace of
    # culoss_workspace_size() bytes: refused, 8 bytes short (the size ignored the export call).
    "workspace_size_short_for_compute_stats": dict(
        mode=5, flags=0x02, desc=(CE, [("int", REDUCTION, 2)], []),
        input={"shape": [0, 2, 2, 1]}, target={}),
    # An int64 label of INT64_MAX with CHECK_TARGETS=1: the message converts 2^63 to long long.
    "int64_max_label_message": dict(
        desc=(CE, [], []), input={"shape": [2, 3, 4]}, target={"dtype": IDX["i64"], "fill": 5,
                                                              "seed": 6}),
    # Dice with SIGMOID, zero smoothing, an empty target and logits of -400 (float64): the
    # CPU's d/dSP = num / (den * den) is 0 / 0 when den ~ 1e-174: a NaN gradient.
    "zero_smoothing_saturated_logits_nan_gradient": dict(
        desc=(DICE, [("int", ACTIVATION, 1), ("float", SMOOTH_NR, 0.0), ("float", SMOOTH_DR, 0.0)], []),
        input={"shape": [2, 1, 6], "fill": 4, "seed": 2, "dtype": 160 + F["f64"]},
        target={"how": 1, "fill": 2}),
    # Lovász on an empty input with N = C = 2^20: 2^40 empty loop iterations on the CPU.
    "lovasz_empty_input_hangs": dict(
        desc=(LSOFTMAX, [], []), input={"shape": [2**20, 2**20, 0]}, target={}),
    # ... and its per-pixel loops run over all N = 2^40 images of an input without pixels.
    "lovasz_empty_input_huge_batch_hangs": dict(
        desc=(LSOFTMAX, [], []), input={"shape": [2**40, 16, 0]}, target={}),
}


def main():
    for folder, table in (("corpus", CORPUS), ("regressions", REGRESSIONS)):
        path = os.path.join(HERE, folder)
        os.makedirs(path, exist_ok=True)
        for old in os.listdir(path):
            if not old.startswith("."):
                os.remove(os.path.join(path, old))
        for name, spec in table.items():
            with open(os.path.join(path, name), "wb") as f:
                f.write(scenario(**spec))
    print(f"wrote {len(CORPUS)} corpus inputs and {len(REGRESSIONS)} regressions", file=sys.stderr)


if __name__ == "__main__":
    main()
