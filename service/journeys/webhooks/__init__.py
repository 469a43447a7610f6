"""Webhook delivery: signing by the Standard Webhooks scheme, the guard on where we connect,
the retry schedule, the message bodies and the dispatcher that posts them."""
