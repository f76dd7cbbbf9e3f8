"""Admission webhooks as a real API server calls them (MutatingWebhookConfiguration)."""
