"""Plumbing both sides share: the asyncio loop thread and the measure of how late it runs.

Neither the suite's checks nor the system under test: the embedded reference runs on a
`LoopThread` too, so this sits below both of them.
"""
