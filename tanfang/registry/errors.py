"""Errors the registry's services raise; their messages are for the user."""

from __future__ import annotations


class RegistryError(ValueError):
    """A change the registry refuses; the message is for the user."""


class AccessDenied(PermissionError):
    pass
