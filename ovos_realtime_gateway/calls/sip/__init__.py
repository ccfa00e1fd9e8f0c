"""SIP calls: a small UDP user agent (server side) for G.711 trunks, bridged to the session engine."""
