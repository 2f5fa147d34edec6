"""mptcp package."""
