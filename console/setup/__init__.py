"""Setting up a station: find the controllers, draft a config, write it (``bfr-console setup``).

Knows no Textual: the setup screen (:mod:`console.ui.screens.setup`) and the headless mode
(:mod:`console.setup.headless`) share everything here.
"""
