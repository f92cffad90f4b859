"""Tools around the notebooks: results, report, notebook runner and checks, explorer, browser check, environment."""
