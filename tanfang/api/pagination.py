"""Keyset pages for every API list: no OFFSET and no COUNT, so the millionth row costs what
the first does (as the web list pages)."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    ordering = "id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class AreaPagination(KeysetPagination):
    ordering = "code"
    page_size = 200
    max_page_size = 1000
