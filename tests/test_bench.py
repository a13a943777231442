"""Tests of the RD benchmark: Bjontegaard maths, the x264/x265 anchors, and the driver end to end."""

from __future__ import annotations

import csv
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from nvcodec.bench import annexb, obu, report
from nvcodec.bench.anchors import SvtAv1Anchor, X264Anchor, X265Anchor, anchor_class
from nvcodec.bench.bjontegaard import bd_psnr, bd_rate, pchip_eval, pchip_integral
from nvcodec.bench.clips import ClipSpec
from nvcodec.bench.rd import BenchConfig, run_benchmark
from nvcodec.errors import UsageError
from nvcodec.metrics import psnr

torch.set_num_threads(1)

RATES = [0.02, 0.05, 0.1, 0.2, 0.4]
PSNRS = [24.1, 27.9, 30.6, 33.0, 35.2]


# ------------------------------------------------------------------------------- Bjontegaard


def test_identical_curves_give_zero():
    assert bd_rate(RATES, PSNRS, RATES, PSNRS).value == pytest.approx(0.0, abs=1e-12)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS).value == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [0.5, 0.8, 1.25, 2.0])
def test_scaled_rates_give_k_minus_one_bd_rate(k):
    result = bd_rate(RATES, PSNRS, [r * k for r in RATES], PSNRS)
    assert result.value == pytest.approx((k - 1) * 100, rel=1e-9)
    assert result.overlap == pytest.approx((PSNRS[0], PSNRS[-1]))


def test_one_db_shift_gives_bd_psnr_plus_one():
    assert bd_psnr(RATES, PSNRS, RATES, [p + 1 for p in PSNRS]).value == pytest.approx(1.0, rel=1e-9)
    # and the rate saving it implies is negative
    assert bd_rate(RATES, PSNRS, RATES, [p + 1 for p in PSNRS]).value < 0


def test_point_order_does_not_matter():
    order = [3, 0, 4, 1, 2]
    shuffled = bd_rate(RATES, PSNRS, [RATES[i] * 1.1 for i in order], [PSNRS[i] for i in order])
    assert shuffled.value == pytest.approx(10.0, rel=1e-9)


def test_non_overlapping_curves_give_nan_with_reason():
    result = bd_rate(RATES, PSNRS, RATES, [p + 40 for p in PSNRS])
    assert math.isnan(result.value) and "do not overlap" in result.reason
    result = bd_psnr(RATES, PSNRS, [r * 100 for r in RATES], PSNRS)
    assert math.isnan(result.value) and "do not overlap" in result.reason


@pytest.mark.parametrize(
    "rates, psnrs, words",
    [([0.1], [30.0], "at least 2"), ([0.1, -0.2], [30.0, 31.0], "positive"), ([0.1, 0.2], [30.0, 30.0], "same PSNR")],
)
def test_degenerate_curves_give_nan_with_reason(rates, psnrs, words):
    result = bd_rate(RATES, PSNRS, rates, psnrs)
    assert math.isnan(result.value) and words in result.reason


def test_pchip_interpolates_monotone_without_overshoot():
    x, y = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 0.1, 2.0, 2.05])
    assert pchip_eval(x, y, x) == pytest.approx(y)
    fine = pchip_eval(x, y, np.linspace(0, 3, 301))
    assert np.all(np.diff(fine) >= -1e-12) and fine.max() <= 2.05 + 1e-12
    # linear data is reproduced exactly, and so is its integral
    assert pchip_integral([0, 1, 3], [0, 2, 6], 0.5, 2.5) == pytest.approx(6.0)


# ----------------------------------------------------------------------------------- anchors


def smooth_clip(frames: int = 8, width: int = 64, height: int = 48) -> np.ndarray:
    """A slowly moving colour gradient: easy to code, so a high PSNR is expected."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    out = []
    for t in range(frames):
        r = 128 + 80 * np.sin((xx + 2 * t) / 17.0)
        g = 128 + 80 * np.cos((yy - t) / 13.0)
        b = 128 + 60 * np.sin((xx + yy + 3 * t) / 23.0)
        out.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.round(np.stack(out)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("cls", [X264Anchor, X265Anchor, SvtAv1Anchor])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
def test_anchor_round_trip_on_smooth_clip(cls, pix_fmt):
    if not cls.available():
        pytest.skip(cls.unavailable_reason())
    if pix_fmt not in cls.pix_fmts:
        with pytest.raises(UsageError):
            cls(pix_fmt=pix_fmt)
        return
    frames = smooth_clip()
    anchor = cls(crf=18, preset=cls.probe_preset, pix_fmt=pix_fmt)
    data = anchor.encode(frames, Fraction(25))
    decoded = anchor.decode(data)
    assert len(data) > 0
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # CRF 18 on a smooth gradient: the 8-bit YCbCr round trip alone costs little, so > 30 dB is safe
    assert psnr(frames, decoded) > 30.0
    assert anchor.version not in ("unknown", "unavailable")
    uncounted = anchor.uncounted_bytes(data)
    assert anchor.rate_bytes(data) == len(data) - uncounted
    if cls is X264Anchor:  # its version SEI is written and left out of the rate
        assert 0 < uncounted < len(data) and cls.parse_version(data) == anchor.version
    elif cls is X265Anchor:  # info=0: no version SEI written at all
        assert uncounted == 0 and cls.parse_version(data) is None
    else:  # one 2-byte temporal delimiter per frame, and no metadata OBU
        assert uncounted == 2 * len(frames) and obu.OBU_METADATA not in obu.bytes_by_type(data)


def test_anchor_on_sample_clip_and_crf_ordering():
    from nvcodec.io import read_video, sample_clip_path

    frames = read_video(sample_clip_path(), frames=(0, 8), resize=(64, 48)).frames
    low, high = X264Anchor(crf=18), X264Anchor(crf=40)
    fine, coarse = low.encode(frames), high.encode(frames)
    assert len(fine) > len(coarse) > 0
    assert psnr(frames, low.decode(fine)) > psnr(frames, high.decode(coarse)) > 15.0


def test_anchor_rejects_bad_settings_and_odd_sizes():
    with pytest.raises(UsageError):
        X264Anchor(preset="warp9")
    with pytest.raises(UsageError):
        X264Anchor(crf=60)
    with pytest.raises(UsageError):
        anchor_class("vp9")
    with pytest.raises(UsageError):
        X264Anchor().encode(np.zeros((2, 47, 64, 3), np.uint8))
    with pytest.raises(UsageError):
        SvtAv1Anchor(preset="medium")
    with pytest.raises(UsageError):
        SvtAv1Anchor(crf=64)
    assert SvtAv1Anchor().preset == "4" and SvtAv1Anchor(crf=63).crf == 63


# ------------------------------------------------------------------ what the rate leaves out

UUID = bytes(range(16))  # user_data_unregistered starts with a 16-byte UUID


def _sei_message(kind: int, payload: bytes) -> bytes:
    """payloadType and payloadSize as 0xFF runs plus a last byte, then the payload (RBSP bytes)."""

    def ff_coded(value: int) -> bytes:
        return b"\xff" * (value // 255) + bytes([value % 255])

    return ff_coded(kind) + ff_coded(len(payload)) + payload


H264_SPS = b"\x00\x00\x00\x01" + b"\x67\x42\x00\x0a\xf8\x41\xa2"  # 4 + 7 bytes
H264_SLICE = b"\x00\x00\x01" + b"\x65\x88\x84\x00\x21\xff\xee"  # 3 + 7 bytes
# user data of 300 bytes (two size bytes), one of whose zero pairs needs an emulation-prevention 0x03
USER_TEXT = UUID + b"x264 - core 165 - H.264/MPEG-4 AVC codec \x00\x00\x01".ljust(284, b"o")
H264_VERSION_SEI = (
    b"\x00\x00\x01\x06" + _sei_message(5, USER_TEXT).replace(b"\x00\x00\x01", b"\x00\x00\x03\x01") + b"\x80"
)
H264_RECOVERY_SEI = b"\x00\x00\x01\x06" + _sei_message(6, b"\x84") + b"\x80"  # recovery point: kept
H264_MIXED_SEI = b"\x00\x00\x01\x06" + _sei_message(5, UUID) + _sei_message(6, b"\x84") + b"\x80"  # kept whole


def test_h264_user_data_sei_is_counted_exactly():
    assert len(USER_TEXT) == 300 and len(H264_VERSION_SEI) == 3 + 1 + 1 + 2 + 301 + 1
    stream = H264_SPS + H264_VERSION_SEI + H264_RECOVERY_SEI + H264_MIXED_SEI + H264_SLICE
    units = annexb.nal_units(stream)
    assert [u.size for u in units] == [11, 309, 8, 3 + 1 + 18 + 3 + 1, 10]
    assert [annexb.is_user_data_sei(stream, u, annexb.H264) for u in units] == [False, True, False, False, False]
    assert annexb.user_data_sei_bytes(stream, annexb.H264) == 309
    assert annexb.user_data_sei_bytes(stream, annexb.HEVC) == 0  # read as HEVC, none of these is an SEI
    assert annexb.user_data_sei_bytes(H264_SPS + H264_SLICE, annexb.H264) == 0


def test_hevc_user_data_sei_is_counted_exactly():
    vps = b"\x00\x00\x00\x01" + b"\x40\x01\x0c\x01\xff\xff"  # type 32: 4 + 6 bytes
    prefix = b"\x00\x00\x01" + b"\x4e\x01" + _sei_message(5, UUID + b"x265 (build 216)") + b"\x80"  # type 39
    suffix = b"\x00\x00\x01" + b"\x50\x01" + _sei_message(5, UUID) + b"\x80"  # type 40
    picture_hash = b"\x00\x00\x01" + b"\x50\x01" + _sei_message(132, bytes(17)) + b"\x80"  # decoded picture hash: kept
    slice_ = b"\x00\x00\x01" + b"\x26\x01\xaf\x09\x60"  # IDR_W_RADL, type 19
    stream = vps + prefix + slice_ + suffix + picture_hash
    assert [u.size for u in annexb.nal_units(stream)] == [10, 3 + 2 + 2 + 32 + 1, 8, 3 + 2 + 2 + 16 + 1, 3 + 2 + 19 + 1]
    assert annexb.user_data_sei_bytes(stream, annexb.HEVC) == 40 + 24
    assert annexb.user_data_sei_bytes(stream, annexb.H264) == 0  # type bits differ: 0x4e & 0x1f = 14


def test_malformed_sei_is_kept():
    truncated = b"\x00\x00\x01\x06\x05\x20" + UUID  # says 32 bytes, has 16
    assert annexb.user_data_sei_bytes(truncated, annexb.H264) == 0
    assert annexb.user_data_sei_bytes(b"\x00\x00\x01\x06\x80", annexb.H264) == 0  # no message at all


def test_av1_temporal_delimiters_are_counted_exactly():
    delimiter = b"\x12\x00"  # type 2, has_size_field, size 0
    sequence_header = b"\x0a\x03abc"  # type 1, 3 bytes
    frame = b"\x32\xc8\x01" + bytes(200)  # type 6, LEB128 size 200
    stream = delimiter + sequence_header + frame + delimiter + frame
    assert obu.obu_sizes(stream) == [(2, 2), (1, 5), (6, 203), (2, 2), (6, 203)]
    assert obu.temporal_delimiter_bytes(stream) == 4
    with pytest.raises(ValueError):
        obu.obu_sizes(frame[:-1])


# ------------------------------------------------------------------------------------ driver


def _nvcodec_model() -> str | None:
    """A registered backbone when the codec API exists, else None (anchors-only run)."""
    try:
        import nvcodec.api  # noqa: F401  (only checking the codec is there)
        from nvcodec.families import family_names as available_models
    except ImportError:
        return None
    models = list(available_models())
    return models[0] if models else None


@pytest.mark.slow  # trains, or decodes in a subprocess
def test_benchmark_end_to_end_and_resume(tmp_path):
    model = _nvcodec_model()
    config = BenchConfig(
        out_dir=str(tmp_path / "rd"),
        clips=(ClipSpec(None, frames=(0, 8), resize=(64, 48), name="tiny"),),
        anchors=("x264", "x265"),
        anchor_presets=("ultrafast",),
        crfs=(26, 36),
        models=(model,) if model else (),
        bpps=(3.0,) if model else (),  # an INR's weights cost > 1.4 bpp on 8 frames of 64x48
        epochs=1 if model else None,
    )
    lines: list[str] = []
    first = run_benchmark(config, log=lines.append)

    expected_curves = {"x264 ultrafast"} | ({"x265 ultrafast"} if X265Anchor.available() else set())
    if model:
        expected_curves.add(f"nvcodec {model} medium")
    assert {p.curve for p in first.points} == expected_curves
    assert not first.failed
    assert first.cached == 0 and first.computed == len(first.points)
    assert sum("] tiny " in line for line in lines) == len(first.points)  # one progress line per point

    for kind in ("csv", "json", "markdown", "png"):
        assert (tmp_path / "rd" / first.outputs[kind].split("/")[-1]).stat().st_size > 0
    with open(first.outputs["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(first.points) and all(float(r["bpp"]) > 0 for r in rows)
    record = json.loads(open(first.outputs["json"]).read())
    assert record["environment"]["encoders"]["libx264"].startswith("core")
    assert "coded video" in record["measurement"]["rate_anchors"]
    x264_rows = [r for r in rows if r["codec"] == "x264"]  # raw size, the SEI left out, and the rate
    assert all(int(r["file_bytes"]) - int(r["uncounted_bytes"]) == int(r["rate_bytes"]) for r in x264_rows)
    assert all(int(r["uncounted_bytes"]) > 0 for r in x264_rows)
    assert record["computed"] == len(first.points)
    summary = open(first.outputs["markdown"]).read()
    assert "BD-rate" in summary and "| x264 ultrafast | CRF 26 |" in summary
    if X265Anchor.available():
        bd = [b for b in first.bd if b.test == "x265 ultrafast" and b.anchor == "x264 ultrafast"]
        assert len(bd) == 1 and (math.isfinite(bd[0].bd_rate) or bd[0].note)
    for point in first.points:
        assert point.file_bytes > 0 and point.psnr > (15 if point.codec != "nvcodec" else 5)  # 1 epoch: barely fit
        assert (tmp_path / "rd" / point.stream).stat().st_size == point.file_bytes

    second = run_benchmark(config, log=None)
    assert second.computed == 0 and second.cached == len(first.points)
    assert [p.to_dict() | {"from_cache": True} for p in first.points] == [p.to_dict() for p in second.points]
    assert json.loads(open(second.outputs["json"]).read())["computed"] == 0
    if model:  # the bench scores the .nvc itself; it must agree with what encode() reported
        nvc = next(p for p in second.points if p.codec == "nvcodec")
        assert nvc.psnr == pytest.approx(nvc.settings["reported"]["psnr"], abs=1e-6)


def test_missing_codec_is_skipped_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setattr(X265Anchor, "unavailable_reason", classmethod(lambda cls: "no libx265 in this build"))
    config = BenchConfig(
        out_dir=str(tmp_path / "rd"),
        clips=(ClipSpec(None, frames=(0, 2), resize=(32, 32)),),
        anchors=("x265",),
        crfs=(30,),
        plot=False,
    )
    results = run_benchmark(config, log=None)
    assert results.points == () and not results.failed
    assert [s.reason for s in results.skipped] == ["no libx265 in this build"]
    assert "png" not in results.outputs and "no libx265" in open(results.outputs["markdown"]).read()


OLD_CSV_HEADER = (
    "clip,codec,curve,knob,knob_value,file_bytes,version_sei_bytes,bpp,psnr,y_psnr,ms_ssim,encode_seconds,"
    "decode_seconds,width,height,frames,version,stream,from_cache,key"
)


def test_nvcodec_points_are_reused_from_a_csv(tmp_path):
    """Re-measuring only the anchors: the nvcodec rows of an older rd_points.csv come back unchanged."""
    rows = [
        f"bigbuckbunny,nvcodec,nvcodec nerv 300s cpu,bpp_target,{b},{n},,{8 * n / (32 * 32 * 2)},{q},{q},0.9,"
        f"300,0.1,32,32,2,nvcodec 0.1,streams/x.nvc,False,k{n}"
        for b, n, q in ((1.0, 256, 27.0), (2.0, 512, 31.0))
    ]
    old = tmp_path / "old.csv"
    old.write_text("\n".join([OLD_CSV_HEADER, *rows]) + "\n")
    config = BenchConfig(
        out_dir=str(tmp_path / "rd"),
        clips=(ClipSpec(None, frames=(0, 2), resize=(32, 32)),),
        anchors=("x264",),
        crfs=(20, 30, 40),
        plot=False,
        nvcodec_points=str(old),
    )
    results = run_benchmark(config, log=None)
    reused = [p for p in results.points if p.codec == "nvcodec"]
    assert [(p.rate_bytes, p.file_bytes, p.psnr, p.from_cache) for p in reused] == [
        (256, 256, 27.0, True),
        (512, 512, 31.0, True),
    ]
    assert [(b.test, b.anchor) for b in results.bd] == [("nvcodec nerv 300s cpu", "x264 medium")]
    again = report.read_csv(tmp_path / "rd" / "rd_points.csv")  # the new format reads back the same
    assert [p.to_dict() for p in again] == [
        p.to_dict() | {"rate_counted": q.rate_counted, "settings": {}} for p, q in zip(results.points, again)
    ]
    wrong = BenchConfig(**{**config.__dict__, "clips": (ClipSpec(None, frames=(0, 2), resize=(64, 32)),)})
    with pytest.raises(UsageError, match="32x32x2"):
        run_benchmark(wrong, log=None)
