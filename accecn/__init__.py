"""accecn package."""
