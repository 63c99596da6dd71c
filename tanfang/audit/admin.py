"""The audit log is deliberately absent from the back office.

Auditors read it on its own web page, scoped to their area (``audit_visible_to``); back-office
users are the people it watches, so they get no view of it here, and nobody may change it.
"""
