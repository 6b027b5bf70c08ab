"""Package data: the report page's template (eval.html.j2), rendered by osrerank.report_page."""
