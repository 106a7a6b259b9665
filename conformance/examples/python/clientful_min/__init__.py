"""A minimal Clientful v1 implementation in Python, written from spec/ and proto/:
the canonical protobuf scan (spec §3.4), cipher suite 1 (§5), device certificates
(§5.4) and envelope opening (§6.8). Enough for the conformance families
primitives, identity, wire-codec and envelope-open; a starting point, not a
library."""
