"""The talk page (issue 5): headless Chromium opens /talk, presses Talk, and its (fake, WAV-fed)
microphone asks a question over WebRTC; the page shows the session and the user's transcript.
A screenshot is kept in test-artifacts/talk-page.png."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .browser import Chromium
from .gateway_process import GatewayProcess, configured_gateway, http
from .speech import user_speech_wav

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def talking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("talk")
    gateway, _ = configured_gateway(root, {"talk_page": True}, "admin", "talk")
    with gateway:
        yield gateway


def test_the_talk_page_is_off_unless_enabled(gateway: GatewayProcess) -> None:
    page = http("GET", f"{gateway.base_url}/talk")
    assert page.status == 404 and "talk_page" in page.json()["error"]["message"]
    assert http("POST", f"{gateway.base_url}/talk/client_secret").status == 404


def test_the_talk_page_mints_short_lived_secrets_for_its_project(talking: GatewayProcess) -> None:
    page = http("GET", f"{talking.base_url}/talk")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"oai-events" in page.body and b"/v1/realtime/calls" in page.body
    # its policy allows exactly its own inline script and style, and fetches to its own origin
    csp = page.headers["content-security-policy"]
    html = page.body.decode()
    for tag in ("script", "style"):
        (inline,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}';" in csp, csp
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp and page.headers["x-frame-options"] == "DENY"
    minted = http("POST", f"{talking.base_url}/talk/client_secret")
    assert minted.status == 200, minted.body
    secret = minted.json()
    assert secret["value"].startswith("ek_")
    transcription = secret["session"]["audio"]["input"]["transcription"]
    assert transcription is not None and transcription["model"]
    # the secret opens calls and sessions, and nothing else
    models = http("GET", f"{talking.api_base}/models", key=secret["value"])
    assert models.status == 403


@pytest.mark.slow
async def test_a_browser_talks_to_the_gateway(talking: GatewayProcess, tmp_path: Path) -> None:
    wav = user_speech_wav(tmp_path / "question.wav", "what time is it", tail_ms=3000)
    browser = await Chromium(tmp_path / "profile", wav).launch().connect()
    try:
        await browser.open(f"{talking.base_url}/talk")
        await browser.evaluate("document.getElementById('talk').click()")
        await browser.wait_for("document.getElementById('events').textContent.includes('session.created')")
        await browser.wait_for("document.querySelector('#transcript .user') !== null", timeout=45)
        said = await browser.evaluate("document.querySelector('#transcript .user').textContent")
        assert "time" in said.lower(), said
        # during the call Talk is disabled, and looks it (not the bright green of "press me")
        talk_look = "getComputedStyle(document.getElementById('talk')).backgroundColor"
        assert await browser.evaluate("document.getElementById('talk').disabled") is True
        assert await browser.evaluate(talk_look) == "rgb(228, 228, 228)"
        # no OVOS behind this gateway: the page says so instead of hanging
        await browser.wait_for("document.getElementById('status').textContent.startsWith('no answer')")
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "talk-page.png").write_bytes(await browser.screenshot())  # noqa: ASYNC240
        await browser.evaluate("document.getElementById('hangup').click()")
    finally:
        await browser.close()
