"""``nvc``: a thin click layer over ``nvcodec.api``.

Every deliberate error is an ``NvcError``: printed as one line ``nvc: error: ...`` with its
stable exit code. Anything else is a bug and is reported the same way (set NVC_DEBUG=1 for
the traceback), so a hostile file never produces a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import asdict

import click

from .bitstream.container import NvcReader
from .choices import LOSS_NAMES, TRAIN_CLOCKS
from .errors import NvcError, UsageError
from .presets import PRESETS
from .settings import EncodeSettings, FileOptions

# the options' defaults are the settings' own (one definition each)
ENCODE, FILE = EncodeSettings(), FileOptions()

INTERNAL_ERROR_EXIT = 70


class _Group(click.Group):
    def main(self, *args, **kwargs):
        """A bad option or value is one line, ``nvc: error: ...`` (exit 2), like every other error."""
        try:
            return super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"nvc: error: {exc.format_message()}{hint}", err=True)
            sys.exit(UsageError.exit_code)
        except click.exceptions.Abort:
            click.echo("nvc: interrupted", err=True)
            sys.exit(130)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NvcError as exc:
            click.echo(f"nvc: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt as exc:  # an encode says whether, and from where, it can resume
            click.echo(f"nvc: {exc or 'interrupted'}", err=True)
            sys.exit(130)
        except Exception as exc:  # any error: last line of defence: one line, no traceback
            if os.environ.get("NVC_DEBUG"):
                raise
            click.echo(
                f"nvc: internal error: {exc.__class__.__name__}: {exc} (NVC_DEBUG=1 shows the traceback)", err=True
            )
            sys.exit(INTERNAL_ERROR_EXIT)


def _version_text() -> str:
    from .versions import library_versions

    return "\n".join(f"{k} {v}" for k, v in library_versions().items())


def _family_options(kind: str, skip: tuple[str, ...] = ()):
    """Click options for every family's declared encode (or render) options, each once (but ``skip``)."""
    from .families import declarations

    seen: dict[str, tuple] = {}
    for family in declarations():
        for option in family.encode_options if kind == "encode" else family.render_options:
            if option.name in skip:
                continue
            owners = seen.get(option.name, (option, []))[1]
            seen[option.name] = (option, owners + [family.name])

    def decorate(command):
        for option, owners in reversed(list(seen.values())):
            kwargs = (
                {"is_flag": True, "default": None} if option.type is bool else {"type": option.type, "default": None}
            )
            default = "" if option.type is bool or kind != "encode" else f" (default {option.default:g})"
            command = click.option(
                option.flag, option.name, help=f"{', '.join(owners)}: {option.help}{default}.", **kwargs
            )(command)
        return command

    return decorate


def _print_version(ctx: click.Context, _param, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the versions of nvcodec, torch, constriction, PyAV and FFmpeg.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for torch (default: torch's choice, one per physical core).",
)
def main(threads: int | None) -> None:
    """nvc: an implicit-neural-representation video codec."""
    if threads is not None:
        _limit_threads(threads)


def _limit_threads(count: int) -> None:
    """Without importing torch, so that a command answers bad arguments at once.

    torch and the BLAS libraries read these variables when they load; a torch already loaded
    (the API used in-process) is told directly.
    """
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(count)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)


class _StatusLine:
    """One progress line: redrawn in place on a terminal, else printed every 10 s (and at the end)."""

    def __init__(self, quiet_seconds: float = 0.0) -> None:
        self.tty = sys.stderr.isatty()
        self.started = self.last = time.monotonic()
        self.quiet_seconds = quiet_seconds  # say nothing for work that ends sooner
        self.shown = False

    def show(self, line: str, finished: bool) -> None:
        now = time.monotonic()
        if now - self.started < self.quiet_seconds and not self.shown:
            return
        if not self.tty and now - self.last < 10 and not finished:
            return
        self.last, self.shown = now, True
        click.echo(("\r" + line) if self.tty else line, err=True, nl=not self.tty)
        if self.tty and finished:
            click.echo("", err=True)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _progress_printer(quiet: bool):
    if quiet:
        return None
    status = _StatusLine()

    def show(p) -> None:
        steps = f"{p.step}/{p.total_steps}" if p.total_steps else str(p.step)
        rate = f"  est. {p.bpp:.4f} bpp" if p.bpp else ""
        status.show(
            f"{p.stage:8s} step {steps} ({p.fraction:4.0%})  loss {p.loss:.4f}  "
            f"train PSNR {p.psnr:5.2f} dB{rate}  ETA {_minutes(p.eta)}",
            p.fraction >= 1.0,
        )

    return show


def _decode_printer():
    """Frames written so far and an ETA, once a decode has run for 2 s."""
    status = _StatusLine(quiet_seconds=2.0)

    def show(done: int, total: int, elapsed: float) -> None:
        eta = elapsed * (total - done) / done if done else 0.0
        status.show(f"decode {done}/{total} frames ({done / total:4.0%})  ETA {_minutes(eta)}", done >= total)

    return show


def _read_input(path: str, frames: str | None, resize: str | None):
    from .io import parse_frame_range, parse_size, read_video

    return read_video(path, parse_frame_range(frames), parse_size(resize))


def _emit(record: dict, as_json: bool, lines: list[str]) -> None:
    click.echo(json.dumps(record, indent=2) if as_json else "\n".join(lines))


def _report_lines(report) -> list[str]:
    steps = (
        f"{report.quant_bits:g}-bit steps"
        if report.quant_bits is not None
        else f"learned steps, lambda {report.lam:.3g}"
    )
    target = f"target {report.target_bpp:g}" if report.target_bpp is not None else "constant lambda"
    lines = [
        f"wrote {report.path}: {report.file_bytes} bytes, {report.bpp:.4f} bpp ({target}), "
        f"{report.num_params} parameters, {steps}",
        f"decoded from the file: PSNR {report.psnr:.2f} dB, Y-PSNR {report.y_psnr:.2f} dB, MS-SSIM {report.ms_ssim:.4f}",
        f"time: train {report.train_seconds:.1f} s, encode total {report.encode_seconds:.1f} s, "
        f"decode {report.decode_seconds:.2f} s",
    ]
    if report.estimated_bytes is not None:
        error = 100 * (report.estimated_bytes - report.file_bytes) / report.file_bytes
        lines.insert(
            1,
            f"rate: the training's estimate {report.estimated_bytes} bytes, written {report.file_bytes} "
            f"bytes ({error:+.1f} %)",
        )
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("s") else "s")


def _file_report_lines(report) -> list[str]:
    """A single-segment file reports as a short clip always did; a segmented one adds its segments."""
    from .encoder import EncodeReport

    notes = [f"note: {n}" for n in report.notes]
    if len(report.segments) == 1 and not report.audio_bytes:
        return _report_lines(EncodeReport(**report.segments[0])) + notes
    target = f"target {report.target_bpp:g}" if report.target_bpp is not None else "constant lambda"
    layout = f"{_count(len(report.segments), 'segment')} ({_count(report.workers, 'process')})"
    if report.audio_bytes:  # the video's rate against its target first; the audio's share after it
        lines = [
            f"wrote {report.path}: video {report.video_bpp:.4f} bpp ({target}), {layout}",
            f"file: {report.file_bytes} bytes, {report.bpp:.4f} bpp with {report.audio_bytes} bytes of audio "
            "carried as is (not counted in the video's bpp)",
        ]
    else:
        lines = [f"wrote {report.path}: {report.file_bytes} bytes, {report.bpp:.4f} bpp ({target}), {layout}"]
    lines += [
        f"decoded from the file: PSNR {report.psnr:.2f} dB, Y-PSNR {report.y_psnr:.2f} dB, "
        f"MS-SSIM {report.ms_ssim:.4f}",
        f"time: encode total {report.encode_seconds:.1f} s, decode {report.decode_seconds:.2f} s",
    ]
    return lines + notes


# encode's options that set an EncodeSettings field under another name (the flag is what a user types)
SETTING_OF_OPTION = {"train_time": "train_seconds", "bits": "quant_bits", "checkpoint_every": "checkpoint_seconds"}


def _encode_settings(options: dict) -> EncodeSettings:
    """EncodeSettings from encode's options; the options that are no setting are the family's knobs."""
    named = {SETTING_OF_OPTION.get(name, name): value for name, value in options.items()}
    fields = {f.name for f in dataclasses.fields(EncodeSettings)}
    chosen = {name: value for name, value in named.items() if name in fields}
    chosen["rate_training"] = chosen["rate_training"] == "on" and chosen["quant_bits"] is None
    knobs = {name: value for name, value in named.items() if name not in fields and value is not None}
    return EncodeSettings(**chosen, objective_options=knobs)


@main.command()
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", required=True, help="The .nvc file to write.")
@click.option(
    "--model", default=ENCODE.model, show_default=True, help="Family: the kind of network (see `nvc models`)."
)
@click.option(
    "--bpp",
    type=click.FloatRange(min=0, min_open=True),
    default=ENCODE.bpp,
    show_default=True,
    help="Target bits per pixel of the file.",
)
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default=ENCODE.preset,
    show_default=True,
    help="Training time that fits the clip: "
    + "; ".join(f"{p.name} {p.describe()}" for p in PRESETS.values())
    + ". A megapixel of video is frames x width x height / 1e6.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Train this many epochs instead.")
@click.option(
    "--train-time",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Train for this many wall-clock seconds instead (set-up included).",
)
@click.option(
    "--train-clock",
    type=click.Choice(TRAIN_CLOCKS),
    default=ENCODE.train_clock,
    show_default=True,
    help="Clock of --train-time and the presets: wall, or process CPU time (for fair benchmarks).",
)
@click.option("--frames", default=None, help="Frame range A:B of the input (B excluded).")
@click.option("--resize", default=None, help="Scale the input to WxH first (area filter).")
@click.option("--seed", type=int, default=ENCODE.seed, show_default=True)
@click.option("--device", default=ENCODE.device, show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--amp/--no-amp", default=None, help="bf16 autocast (default: when it measures faster).")
@click.option(
    "--prune",
    type=float,
    default=ENCODE.prune,
    show_default=True,
    help="Fraction of weights pruned (--rate-training off; rate-aware training zeroes what its rate prices out).",
)
@click.option(
    "--loss",
    type=click.Choice(LOSS_NAMES),
    default=ENCODE.loss,
    show_default=True,
    help="l2 (best PSNR per CPU second) or fusion (0.7 L1 + 0.3 (1 - SSIM)).",
)
@click.option(
    "--bits",
    type=float,
    default=None,
    help="Fixed quantization bit depth after training (implies --rate-training off).",
)
@click.option(
    "--rate-training",
    type=click.Choice(["on", "off"]),
    default="on",
    show_default=True,
    help="on: train against the file's rate (learned steps, D + lambda x R); off: quantize after training.",
)
@click.option(
    "--lambda",
    "lam",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Constant-quality mode: price of a bit per pixel in squared error (larger: smaller file); "
    "--bpp then only sizes the model.",
)
@click.option("--resume/--no-resume", default=ENCODE.resume, show_default=True, help="Checkpoint beside the output.")
@click.option(
    "--checkpoint-every",
    type=click.FloatRange(min=0, min_open=True),
    default=ENCODE.checkpoint_seconds,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between checkpoints (the first comes after at most 10 s).",
)
@click.option(
    "--segment-seconds",
    type=click.FloatRange(min=0),
    default=FILE.segment_seconds,
    show_default=True,
    metavar="SECONDS",
    help="Longest segment: a long input is coded as independent segments of half this to this long, "
    "cut at scene changes (0: one segment; shorter segments use less memory, longer ones fewer bits).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=FILE.jobs,
    show_default=True,
    help="Chains of segments encoded at once, each in its own process (the cores are shared out; under "
    "torchrun, one process per rank instead).",
)
@click.option(
    "--chain-length",
    type=click.IntRange(min=1),
    default=FILE.chain_length,
    show_default=True,
    metavar="N",
    help="Segments per chain: each segment of a chain starts from the model of the one before (chains "
    "restart at scene cuts; 1: every segment starts from nothing).",
)
@click.option(
    "--predict/--no-predict",
    default=FILE.predict,
    show_default=True,
    help="Code a chained segment's weights as differences from the previous segment's (fewer bits; "
    "decoding a segment then reads its chain from the start). --no-predict: every segment decodable alone.",
)
@click.option(
    "--audio/--no-audio",
    default=FILE.audio,
    show_default=True,
    help="Carry the input's audio track (its packets unchanged; not counted in the video's bpp).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@_family_options("encode")
@click.pass_context
def encode(
    ctx,
    input_path,
    output,
    frames,
    resize,
    segment_seconds,
    jobs,
    chain_length,
    predict,
    audio,
    as_json,
    quiet,
    **options,
):
    """Fit a model of the chosen family to INPUT and write OUTPUT (.nvc); report what the decoder gets from it."""
    from .fsutil import check_writable
    from .settings import check_settings

    if not output.endswith(".nvc"):
        raise UsageError(f"-o {output}: the output of encode must end in .nvc")
    settings = _encode_settings(options)
    check_settings(settings)  # every option, then the output, then the input: all before torch loads
    check_writable(output)
    from .io import parse_frame_range, parse_size
    from .segmented import encode_file

    options = FileOptions(
        parse_frame_range(frames),
        parse_size(resize),
        segment_seconds,
        jobs,
        ctx.parent.params.get("threads"),
        audio,
        chain_length,
        predict,
    )
    log = None if quiet else (lambda msg: click.echo(msg, err=True))
    report = encode_file(input_path, output, settings, options, progress=_progress_printer(quiet), log=log)
    if report is not None:  # None: a torchrun rank other than 0
        _emit(asdict(report), as_json, _file_report_lines(report))


@main.command()
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", required=True, help=".mp4, .mkv (lossless), .y4m, or a folder name for PNGs.")
@click.option("--frames", default=None, help="Decode only frames A:B (random access).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--lossless", is_flag=True, help="For .mp4: exact RGB (libx264rgb, qp 0).")
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Spatial scale (pixel-wise families only).",
)
@click.option("--size", default=None, help="Output WxH (pixel-wise families only).")
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Output frame rate by time interpolation (any_time families).",
)
@click.option(
    "--segmentation",
    default=None,
    metavar="VIDEO",
    help="Also write the layers' weights as a colour map to this video (families with layers).",
)
@click.option(
    "--audio/--no-audio", default=True, show_default=True, help="Copy a carried audio track into .mp4 / .mkv outputs."
)
@_family_options("render", skip=("segmentation",))  # --segmentation names a second output instead
def decode(input_path, output, frames, device, lossless, scale, size, fps, segmentation, audio, **family_options):
    """Decode INPUT (.nvc) to OUTPUT."""
    from dataclasses import replace
    from fractions import Fraction

    from .decoder import plan_output
    from .fsutil import check_writable
    from .io import check_frame_size, output_kind, parse_frame_range, parse_size
    from .renderplan import RenderRequest

    if scale is not None and size is not None:
        raise UsageError("--scale and --size: give one of them")
    request = RenderRequest(
        frames=parse_frame_range(frames),
        size=parse_size(size, "--size"),
        scale=scale,
        fps=Fraction(fps).limit_denominator(1001) if fps is not None else None,
        render_options={k: v for k, v in family_options.items() if v is not None},
    )
    nvc = NvcReader(input_path)  # a bad file, output or request is answered before torch loads
    for target in (output, segmentation):
        if target is not None:
            output_kind(target)
            check_writable(target)
    (height, width), _ = plan_output(nvc, request)
    check_frame_size(output, width, height, lossless)
    from .decoder import decode_to_file

    if segmentation is not None:  # first, so an option the model lacks fails before anything is written
        seg = replace(request, render_options={**request.render_options, "segmentation": True})
        done = decode_to_file(nvc, segmentation, seg, device, lossless, _decode_printer())
        click.echo(f"wrote {segmentation}: {done.frames} frames")
    done = decode_to_file(nvc, output, request, device, lossless, _decode_printer(), audio)
    line = f"wrote {output}: {done.frames} frames"
    if done.synthesized is not None and done.synthesized != done.frames:
        line += f" ({done.synthesized} synthesized: a predicted frame needs the frames it is made from)"
    if nvc.segmented:
        used = f"{done.segments[0]}" + (f"-{done.segments[-1]}" if len(done.segments) > 1 else "")
        before = None if done.chain_from is None else range(done.chain_from, done.segments[0])
        chain = (
            f", and the weights of segment{'s' * (len(before) > 1)} "
            f"{before[0]}{f'-{before[-1]}' if len(before) > 1 else ''} they are predicted from"
            if before
            else ""
        )
        line += (
            f"; read {done.bytes_read} of {done.file_bytes} bytes (segment{'s' * (len(done.segments) > 1)} "
            f"{used} of {len(nvc.segments)}{chain}); audio {done.audio}"
        )
        if len(nvc.complete()) < len(nvc.segments):
            click.echo(
                f"nvc: note: the file is truncated: {len(nvc.segments) - len(nvc.complete())} of "
                f"{len(nvc.segments)} segments are cut off; their frames are missing",
                err=True,
            )
    click.echo(line)


@main.command()
@click.argument("input_path", metavar="FILE")
@click.option("--json", "as_json", is_flag=True)
def info(input_path, as_json):
    """Header, model, per-tensor bits and totals of an .nvc file."""
    NvcReader(input_path)  # a bad file is answered before torch loads
    from .decoder import inspect

    data = inspect(input_path)
    v = data["video"]
    lines = [
        f"{data['file']}: .nvc {data['format_version']}, {data['bytes']} bytes, {data['bpp']:.4f} bpp",
        f"video: {v['width']}x{v['height']}, {v['frames']} frames at {v['fps']} fps",
    ]
    lines += _segment_lines(data) if "segments" in data else _stream_lines(data)
    measured = data["metadata"].get("measured")
    if measured:
        lines.append(f"encoder measured: PSNR {measured['psnr']:.2f} dB, MS-SSIM {measured['ms_ssim']:.4f}")
    _emit(data, as_json, lines)


def _segment_lines(data: dict) -> list[str]:
    lines = [
        f"{_count(len(data['segments']) + data['missing_segments'], 'segment')}; video {data['video_bpp']:.4f} bpp",
        "segment  frames          offset      bytes     bpp  model        decoder MAC/px  coded",
    ]
    for s in data["segments"]:
        macs = s["decoder_macs_per_pixel"]
        coded = (
            f"against {s['index'] - 1} ({s['residual_tensors']} of {len(s['tensors'])} tensors; decoding it reads "
            f"segments {s['chain_start']}-{s['index']}, {s['chain_bytes']} bytes)"
            if s["predicted"]
            else "alone"
        )
        lines.append(
            f"{s['index']:7d}  {s['frames'][0]:>6d}:{s['frames'][1]:<6d}  {s['offset']:10d}  {s['bytes']:9d}  "
            f"{s['bpp']:.4f}  {s['model']['family']:11s}  {'-' if macs is None else f'{macs:.0f}':>14s}  {coded}"
        )
    if data["missing_segments"]:
        lines.append(f"{data['missing_segments']} segment(s) cut off: the file is truncated")
    audio = data["audio"]
    lines.append(
        "audio: none"
        if audio is None
        else f"audio: {audio['codec']}, {audio['packets']} packets, {audio['bytes']} bytes (carried as is)"
    )
    return lines


def _stream_lines(data: dict) -> list[str]:
    m = data["model"]
    lines = [
        f"model: {m['family']} v{m['arch_version']}, {m['params']} parameters",
        f"config: {json.dumps(m['config'], sort_keys=True)}",
        "tensor  shape                 model        symbols         bytes   bits/weight",
    ]
    for t in data["tensors"]:
        total = t["payload_bytes"] + t["table_bytes"] + t["step_bytes"]
        lines.append(
            f"{t['index']:6d}  {'x'.join(map(str, t['shape'])):20s}  {t['model']:11s}  "
            f"[{t['symbols'][0]}, {t['symbols'][1]}]".ljust(58)
            + f"{total:8d}   {t['bits_per_weight']:.3f}"
        )
    lines.append(
        f"tensor payloads: {data['payload_bytes']} bytes; container overhead: "
        f"{data['bytes'] - data['payload_bytes']} bytes"
    )
    if data["latent_bytes"]:
        networks = data["payload_bytes"] - data["latent_bytes"]
        lines.append(
            f"where the bits go: latents {data['latent_bytes']} bytes "
            f"({100 * data['latent_bytes'] / data['bytes']:.1f} %), networks {networks} bytes "
            f"({100 * networks / data['bytes']:.1f} %), header and container "
            f"{data['bytes'] - data['payload_bytes']} bytes"
        )
    if data["motion_bytes"]:
        lines.append(
            f"  of the latents, motion {data['motion_bytes']} bytes ({100 * data['motion_bytes'] / data['bytes']:.1f} %)"
        )
    if data["decoder_macs_per_pixel"] is not None:
        split = ", ".join(f"{part} {value:.0f}" for part, value in data["decoder_macs_split"].items())
        lines.append(
            f"decoder: {data['decoder_macs_per_pixel']:.0f} multiply-adds per pixel" + (f" ({split})" if split else "")
        )
    return lines


@main.command(name="eval")
@click.argument("reference")
@click.argument("distorted")
@click.option("--frames", default=None, help="Frame range A:B of REFERENCE (DISTORTED is read whole).")
@click.option("--resize", default=None, help="Scale REFERENCE to WxH first (area filter), as the encoder did.")
@click.option("--json", "as_json", is_flag=True)
def evaluate(reference, distorted, frames, resize, as_json):
    """PSNR, Y-PSNR, SSIM and MS-SSIM of DISTORTED against REFERENCE."""
    from .io import read_video
    from .metrics import ms_ssim, psnr, ssim, y_psnr

    ref = _read_input(reference, frames, resize)
    dist = read_video(distorted)
    if ref.frames.shape != dist.frames.shape:
        raise UsageError(
            f"videos differ: reference {ref.num_frames} frames of {ref.width}x{ref.height}, distorted "
            f"{dist.num_frames} of {dist.width}x{dist.height} (use --frames / --resize on the reference)"
        )
    record = {
        "frames": ref.num_frames,
        "psnr": psnr(ref.frames, dist.frames),
        "y_psnr": y_psnr(ref.frames, dist.frames),
        "ssim": ssim(ref.frames, dist.frames),
        "ms_ssim": ms_ssim(ref.frames, dist.frames),
    }
    _emit(
        record,
        as_json,
        [
            f"PSNR {record['psnr']:.4f} dB  Y-PSNR {record['y_psnr']:.4f} dB  "
            f"SSIM {record['ssim']:.4f}  MS-SSIM {record['ms_ssim']:.4f}  ({ref.num_frames} frames)"
        ],
    )


@main.command()
def models():
    """List the families, their capabilities and their options."""
    from .families import declarations

    for family in declarations():
        options = [o.flag for o in family.encode_options] + [f"decode {o.flag}" for o in family.render_options]
        click.echo(f"{family.name:10s} {family.summary}")
        click.echo(
            f"{'':10s} {', '.join(sorted(family.capabilities))}" + (f"; {', '.join(options)}" if options else "")
        )


@main.command()
@click.option("--bpp", type=float, default=0.1, show_default=True)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="fast", show_default=True)
@click.option("--workdir", default="nvc-demo", show_default=True, help="Folder for the outputs.")
@click.option("--sample-path", is_flag=True, help="Only print the path of the bundled sample clip (an input to try).")
def demo(bpp, preset, workdir, sample_path):
    """Encode, decode and evaluate the sample clip (Big Buck Bunny, 320x180, 32 frames)."""
    from pathlib import Path

    if sample_path:
        from .io import sample_clip_path

        click.echo(sample_clip_path())
        return

    from .decoder import decode_to_file
    from .encoder import encode as encode_video
    from .io import read_video, sample_clip_path
    from .metrics import psnr
    from .settings import EncodeSettings

    folder = Path(workdir)
    folder.mkdir(exist_ok=True)
    source = sample_clip_path()
    click.echo(f"sample: {source} -> 320x180, frames 0:32", err=True)
    video = read_video(source, (0, 32), (320, 180))
    report = encode_video(
        video,
        folder / "bunny.nvc",
        EncodeSettings(bpp=bpp, preset=preset),
        progress=_progress_printer(False),
        log=lambda m: click.echo(m, err=True),
    )
    click.echo("\n".join(_report_lines(report)))
    decode_to_file(folder / "bunny.nvc", folder / "bunny.mkv")
    again = read_video(folder / "bunny.mkv")
    click.echo(
        f"decoded {folder / 'bunny.mkv'} with `nvc decode`; PSNR against the source: "
        f"{psnr(video.frames, again.frames):.2f} dB"
    )


def _add_bench() -> None:
    from .bench.command import bench

    main.add_command(bench)


_add_bench()

if __name__ == "__main__":  # pragma: no cover
    main()
