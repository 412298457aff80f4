"""The server's HTTP side: portal and USSD-over-HTTP API, OpenAPI document, portal objects."""
