"""The web application: server-rendered pages and the JSON API under ``/api/v1``.

``create_web_app(settings)`` in :mod:`pipeline.web.app` builds it; importing this package creates
nothing. Like the command line it only parses, passes the acting user along, calls the catalog's
queries and actions, and renders: the rules live below it.
"""
