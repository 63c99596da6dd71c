"""Tanfang: visiting and care for elderly people with special difficulties."""
