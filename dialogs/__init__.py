"""The conversations: SMS commands and USSD menus, declared as data, texts in a catalogue."""
