"""The tables API: finding a target table and its rule file (`lookup`), the tables a key
may import into (`targets`), and exporting a table as CSV (`export`).

May use: `access`, `intake`, the gateway's plumbing and `shared`."""
