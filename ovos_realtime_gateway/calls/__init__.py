"""Calls: the session engine behind WebRTC (and, later, SIP) instead of a WebSocket."""
