"""The talk page: a browser talks to the assistant over WebRTC, as OpenAI's browser guide does."""
