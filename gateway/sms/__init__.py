"""Short messages: GSM 03.38, text encoding and splitting, reassembly, receipts, MSISDNs."""
