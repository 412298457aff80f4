"""A bundled SMSC (SMPP server) and developer handsets, so everything runs without a carrier."""
