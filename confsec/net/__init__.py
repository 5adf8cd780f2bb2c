"""asyncio networking: TLS contexts, SIP transports, transactions, dialogs, user agents."""
