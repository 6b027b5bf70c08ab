"""Package data: pipelines templates (*.json.j2), rendered by osrerank.templates."""
