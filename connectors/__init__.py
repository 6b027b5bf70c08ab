"""Package data: connectors templates (*.json.j2), rendered by osrerank.templates."""
