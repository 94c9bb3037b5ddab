"""Derivatives of an original: browser-playable access copies, posters, contact sheets, waveforms
and an optional lossless preservation master, each made by ffmpeg from a profile in
``config/transcode_profiles.toml`` and verified before it is used. The original is never written to.
An original that already plays in a browser gets an access copy by stream copy, not a new encoding.
"""

from pipeline.transcode.commands import build_command, contact_sheet_layout, timestamp_label
from pipeline.transcode.derive import Derivative, make_derivative
from pipeline.transcode.errors import ProfileError, TranscodeError, TranscodeTimeoutError
from pipeline.transcode.playable import AccessPlan, plan_access
from pipeline.transcode.profiles import (
    DEFAULT_TRANSCODE_PROFILES,
    Profile,
    TranscodeConfig,
    load_profiles,
    load_transcode_config,
)
from pipeline.transcode.runner import TranscodeRun, run_transcode
from pipeline.transcode.sheet import find_font, label_contact_sheet
from pipeline.transcode.verify import Verification, verify_copy, verify_derivative, verify_lossless

__all__ = [
    "DEFAULT_TRANSCODE_PROFILES",
    "AccessPlan",
    "Derivative",
    "Profile",
    "ProfileError",
    "TranscodeConfig",
    "TranscodeError",
    "TranscodeRun",
    "TranscodeTimeoutError",
    "Verification",
    "build_command",
    "contact_sheet_layout",
    "find_font",
    "label_contact_sheet",
    "load_profiles",
    "load_transcode_config",
    "make_derivative",
    "plan_access",
    "run_transcode",
    "timestamp_label",
    "verify_copy",
    "verify_derivative",
    "verify_lossless",
]
