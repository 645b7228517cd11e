"""report.json/report.md, the HTML dashboards, charts, build history and sweep tables."""
