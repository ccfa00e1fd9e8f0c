"""Replicas of one gateway on a shared store (`cluster` settings): which replica holds each live
session and call, requests forwarded to it, and the news every replica must hear at once."""
