"""The OpenAPI 3.1 document of the HTTP API, served at `/api/v1/openapi.json` and kept in
docs/openapi.json by a test (which also checks it against the routes): the schema helpers
and the schemas derived from the response and request Structs (`schema`), the paths by area
(`paths`, `recovery_paths`: every parameter comes from the `params.Param` its handler
reads) and the document with its route (`document`).
`python -m services.gateway.openapi > docs/openapi.json` writes it."""
