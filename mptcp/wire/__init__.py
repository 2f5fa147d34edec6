"""Wire codecs: bytes <-> typed values, no state (DESIGN.md "Wire codecs")."""
