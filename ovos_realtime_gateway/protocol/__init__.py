"""Wire data of the OpenAI Realtime contract: ids, errors, session shapes. No I/O, no state."""
