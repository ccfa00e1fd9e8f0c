"""Thin adapters between a wire (WebSocket, WebRTC, SIP) and the session engine."""
