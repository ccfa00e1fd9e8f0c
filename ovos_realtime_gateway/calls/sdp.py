"""Checking a WebRTC offer before a peer connection is spent on it."""

from __future__ import annotations

from aiortc.sdp import SessionDescription

from ..protocol import errors

AUDIO_CODECS = ("audio/opus", "audio/pcmu", "audio/pcma")
MAX_SDP_BYTES = 64 * 1024


def _bad_offer(message: str) -> errors.ApiError:
    return errors.ApiError(400, message, type="invalid_request_error", code="invalid_offer", param="sdp")


def check_offer(sdp: str) -> SessionDescription:
    """The parsed offer, or a 400 saying what is wrong with it (syntax, no audio, no usable codec)."""
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise _bad_offer(f"The SDP offer is larger than {MAX_SDP_BYTES} bytes.")
    if not sdp.lstrip().startswith("v=0"):
        raise _bad_offer("The body is not an SDP offer: it must start with 'v=0'.")
    try:
        parsed: SessionDescription = SessionDescription.parse(sdp)
    except Exception as exc:  # the parser raises whatever a bad line provokes
        raise _bad_offer(f"The SDP offer could not be parsed ({type(exc).__name__}).") from None
    audio = [m for m in parsed.media if m.kind == "audio" and m.port != 0]
    if not audio:
        raise _bad_offer("The SDP offer has no audio media section; a realtime call needs one.")
    codecs = {c.mimeType.lower() for m in audio for c in m.rtp.codecs}
    if not codecs & set(AUDIO_CODECS):
        offered = ", ".join(sorted(codecs)) or "none"
        raise _bad_offer(
            f"The SDP offer's audio codecs ({offered}) are not supported; offer opus, PCMU or PCMA."
        )
    if not any(m.dtls is not None and m.ice is not None for m in audio):
        raise _bad_offer("The SDP offer's audio section has no ICE credentials or DTLS fingerprint.")
    return parsed
