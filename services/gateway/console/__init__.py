"""The web console: a static page and ES modules served at `/console/`, which sign in with
an API key kept in the browser's session storage and do everything through the public HTTP
API (so they can do nothing the API would refuse)."""
