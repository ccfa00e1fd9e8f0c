"""The realtime session engine: one state machine per session, independent of the transport."""
