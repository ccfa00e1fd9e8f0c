"""The gateway's OVOS side: the messagebus connection and the responder that asks the skills."""
