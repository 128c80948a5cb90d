"""The web gallery (``make serve``): browse, search and classify products in a browser, and a JSON API."""
