"""`pocketml transcribe`: the text of a WAV file with a speech-recognition package (no torch)."""
from __future__ import annotations

import sys

from ..inspect import printable


def add_parsers(sub, common) -> None:
    p = sub.add_parser("transcribe", parents=[common], help="transcribe speech with a Whisper package",
                       description="Print the text spoken in AUDIO (a WAV file, any rate, mono or not) "
                                   "using MODEL (from `pocketml zoo convert whisper-tiny-en`). Audio "
                                   "longer than 30 s is transcribed in consecutive windows; no "
                                   "timestamps.")
    p.add_argument("model", metavar="MODEL.pocket")
    p.add_argument("audio", metavar="AUDIO.wav")
    p.add_argument("--stats", action="store_true",
                   help="print audio seconds, encoder time, decode tok/s, real-time factor and peak "
                        "memory to stderr")
    p.set_defaults(func=cmd_transcribe)


def cmd_transcribe(args) -> int:
    from ..transcription import Transcriber

    transcriber = Transcriber(args.model)
    result = transcriber.transcribe(args.audio)
    # on a terminal, control characters a model might emit are shown escaped
    print(printable(result.text, keep="\n\t") if sys.stdout.isatty() else result.text)
    if args.stats:
        print(result.stats, file=sys.stderr)
    return 0
