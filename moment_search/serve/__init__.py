"""The HTTP search API and the search page (``moment-search serve``)."""
