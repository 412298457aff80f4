"""Sans-I/O SMPP 3.4: PDU values, the codec and its fast and reference paths, protocol errors."""
