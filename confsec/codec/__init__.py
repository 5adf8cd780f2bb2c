"""Sans-IO codecs: bytes in, values out; no asyncio, no socket, no clock."""
