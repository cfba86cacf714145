"""`python -m services.gateway.openapi`: the document, on standard output."""

import sys

from services.gateway.openapi.document import render

sys.stdout.write(render())
