"""The server-rendered pages. Views are thin: parse the request, call selectors and services,
render. Every view declares who may reach it (``@requires`` or ``@public``)."""
