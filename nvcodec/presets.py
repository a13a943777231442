"""Presets are compute budgets that fit the clip: seconds of training per megapixel of video.

Why time, not epochs: an epoch's cost grows with frames x pixels, so an epoch count that suits
32 frames of 320x180 runs for most of a day on 10 s of 1080p. A budget per megapixel grows with
the clip too, but between a floor (short clips still get a useful fit) and a ceiling (a long clip
gets a duration a user can plan around; more time is one option away). The encoder prints the
budget before training starts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    seconds_per_megapixel: float  # of video: width x height x frames / 1e6
    floor_seconds: float
    ceiling_seconds: float

    def train_seconds(self, num_pixels: int) -> float:
        """Wall-clock seconds of training for a clip of ``num_pixels`` (all frames)."""
        wanted = self.seconds_per_megapixel * num_pixels / 1e6
        return min(self.ceiling_seconds, max(self.floor_seconds, wanted))

    def describe(self) -> str:
        return (
            f"{self.seconds_per_megapixel:g} s per megapixel of video, at least "
            f"{format_seconds(self.floor_seconds)}, at most {format_seconds(self.ceiling_seconds)}"
        )


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("fast", seconds_per_megapixel=15, floor_seconds=30, ceiling_seconds=10 * 60),
        Preset("medium", seconds_per_megapixel=45, floor_seconds=60, ceiling_seconds=30 * 60),
        Preset("slow", seconds_per_megapixel=150, floor_seconds=3 * 60, ceiling_seconds=4 * 3600),
    )
}
FINETUNE_SHARE = 1 / 6  # of a time budget (or epochs // 5 of an epoch count): the stage after pruning / hard rounding


def format_seconds(seconds: float) -> str:
    """'45 s', '2 min 05 s', '1 h 30 min': how long something takes, for people."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
