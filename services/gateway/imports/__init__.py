"""The imports API (the seed's import endpoints): submit a file and follow it (`submit`), the
import resource (`resources`), its report and row errors (`report`), its failed rows
(`failed_rows`), live progress (`live`), the encoding an upload would use (`detection`),
and the import's query parameters (`parameters`).

May use: `access`, `intake`, the gateway's plumbing and `shared`."""
