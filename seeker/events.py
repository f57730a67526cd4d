"""Kept for webhook receivers that import the signature check from here:
it lives in seeker/control/webhooks.py."""

from seeker.control.webhooks import SIGNATURE_HEADER, sign_webhook, verify_webhook

__all__ = ["SIGNATURE_HEADER", "sign_webhook", "verify_webhook"]
