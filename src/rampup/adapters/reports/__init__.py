"""Report rendering: Markdown and self-contained HTML with inline SVG charts (render.JinjaRenderer).

Nothing is imported here: the command line reads labels and sparklines from this package without loading
jinja2 and every report model."""
