"""The API's routers, one module per subject; :func:`api.app.create_app` includes them all."""
