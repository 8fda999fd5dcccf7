"""The HTTP machinery both the JSON API (``multinotes.api``) and the pages (``multinotes.web``)
stand on: the request pipeline (middleware), endpoint declarations, the OpenAPI document and the
request helpers they share (session cookies, flash messages, multipart fields).

It knows nothing of either side: the API and the pages import it and the feature packages
(``multinotes.identity``, ``multinotes.notes``, ...), never each other.
"""
