"""Retention: records and fields whose time is up are deleted or de-identified, as policy says,
unless a legal hold keeps them."""
