"""The operator console: server-rendered Jinja2 pages with htmx, shipped in the package."""
