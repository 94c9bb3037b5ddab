"""Every issue code an item can carry, in one place: what it means, and the message a custodian
reads when the stage that opens it has nothing more particular to say.

An issue is an open problem with an item, listed in the work queue (`evidence items --issue CODE`)
until the stage that opened it finds it solved. Codes are the contract; messages are for people.
"""

from __future__ import annotations

# The five facts the regulation requires, when missing (opened and closed by the probe stage).
MISSING_CASE_NUMBER = "missing-case-number"
MISSING_PROOF_OBJECT = "missing-proof-object"
MISSING_COLLECTOR = "missing-collector"
CAPTURE_TIME_UNKNOWN = "capture-time-unknown"
LOCATION_MISSING = "location-missing"

# What the readers found wrong with the file (the probe stage, from the extractors' problems).
DAMAGED_MEDIA = "damaged-media"  # the file is not readable media of its kind (index missing, bad data)
TRUNCATED_STREAM = "truncated-stream"  # the file ends before its streams do: cut short
UNREADABLE_METADATA = "unreadable-metadata"  # a metadata block or value is present but cannot be read
UNSUPPORTED_TYPE = "unsupported-type"  # not a media type this pipeline can read
TOOL_MISSING = "tool-missing"  # the external program is not installed
TIMEOUT = "timeout"  # the external program did not finish in time on this file; nothing is known
EXTRACTOR_FAILED = "extractor-failed"  # an extractor itself broke; a defect to report, not the file's fault

# Times and deadlines (the probe stage).
CLOCK_DRIFT = "clock-drift"
LATE = "late"
DEADLINE_PROVISIONAL = "deadline-provisional"

# The stored copy (fixity checks open and close these).
FIXITY_MISMATCH = "fixity-mismatch"
FIXITY_MISSING = "fixity-missing"

# Stage outcomes (pipeline.stage.status).
DERIVE_FAILED = "derive-failed"  # some derivative could not be made or verified; ffmpeg's words in the message
STAGE_ERROR = "stage-error"  # a defect met while a stage worked on the item, with the exception

MESSAGES = {
    MISSING_CASE_NUMBER: "No case number: assign the record to a case.",
    MISSING_PROOF_OBJECT: "No proof object: say what the record is meant to prove.",
    MISSING_COLLECTOR: "No collector: the officer who recorded it is unknown.",
    CAPTURE_TIME_UNKNOWN: "Capture time unknown: no readable time in the file, its name or the record.",
    LOCATION_MISSING: "Capture place missing: no place or GPS position in the file, and none for its dock.",
    UNSUPPORTED_TYPE: "Not a recognised audio, video or photo file.",
}

# Which issue each missing required fact (catalog.models.REQUIRED_FACTS) opens.
MISSING_FACT = {
    "case_number": MISSING_CASE_NUMBER,
    "proof_object": MISSING_PROOF_OBJECT,
    "collector": MISSING_COLLECTOR,
    "captured_at": CAPTURE_TIME_UNKNOWN,
    "captured_place": LOCATION_MISSING,
}

# The issues found in the file's bytes: kept from the last probe when facts are chosen again by hand.
MEDIA = (
    DAMAGED_MEDIA,
    TRUNCATED_STREAM,
    UNREADABLE_METADATA,
    TOOL_MISSING,
    TIMEOUT,
    EXTRACTOR_FAILED,
    UNSUPPORTED_TYPE,
)
# Issues of the stored object, not of its metadata: only a fixity check opens or closes them.
STORE = (FIXITY_MISMATCH, FIXITY_MISSING)
# Issues other stages own, which the probe stage leaves as they are.
OTHER_STAGES = (DERIVE_FAILED, STAGE_ERROR)
