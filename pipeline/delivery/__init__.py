"""Delivery: subscribers and their consent, per-recipient messages, SMTP sending, the web app."""
