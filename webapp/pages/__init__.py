"""Dash Pages of the app, one module per page, imported by Dash (``use_pages=True``).

Each module calls ``webapp.security.register_page(__name__, "<permission>")`` and registers
its callbacks with ``webapp.security.secure_callback("<permission>", ...)``. Layouts hold
no patient data: data reaches the browser only through (authorised) callbacks.
"""
