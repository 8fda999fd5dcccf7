"""The prompt library (issue #18): reusable prompt templates with typed ``{{variables}}``, a
system prompt and preferred models; personal, shared with people or public to the instance;
favourites, tags, search, usage counts and what is trending (uses in the last seven days).

``variables`` validates and renders templates, ``service`` keeps them (every read goes through
"template X as seen by user Y"), ``api`` is the JSON API under ``/api/templates`` and ``pages``
the ``/prompts`` pages and the workspace's template picker."""
