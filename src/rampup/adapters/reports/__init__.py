"""Report rendering: Markdown and self-contained HTML with inline SVG charts."""

from rampup.adapters.reports.render import JinjaRenderer

__all__ = ["JinjaRenderer"]
