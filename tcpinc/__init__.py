"""tcpinc package."""
