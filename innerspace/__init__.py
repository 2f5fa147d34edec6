"""innerspace package."""
