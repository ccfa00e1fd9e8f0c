"""REST endpoints: thin aiohttp handlers; the logic lives in protocol/, security/ and store/."""
