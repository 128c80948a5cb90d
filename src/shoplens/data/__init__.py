"""Reading, cleaning and splitting catalogs (``make data``), and the demo catalog."""
