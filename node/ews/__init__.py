"""The early-warning engine (SPEC section 7): each node detects supply risks in its own data.

What it owns: the node's indicator data (trade flows, prices, policy events,
world supply shares) in its own DuckDB file `ews.duckdb` in the data
directory; the indicators computed from it per HS-6 code and period; the
rules that turn exposure plus a trigger into a detection with its evidence;
the analyst's review (draft, approve, dismiss); the local exposure check
of every peer alert; and, from the trilateral layer (issue 12), the members'
policy reports as policy events and the watchlist in force as the engine
sees it.

Layers, and what each may import:
- pure: `codes` (closed sets and field rules), `thresholds` (the settings),
  `bands` (figures to the coarse bands that may leave the node), `rules`
  (indicator rows to detections), `drafts` (a detection to the SPEC section 3
  alert fields), `indicators` (the SQL of every indicator: text, no I/O),
  `watch` (the watchlist in force as plain data; its helpers that keep it
  in the store are given an open store);
- storage: `store` (the DuckDB file, its schema, its migrations and transactions);
- `ingest` (reading CSV / JSON lines / UN Comtrade files into the store,
  every row validated), `reports` (policy reports into the events, once),
  `scan` and `exposure` (running the SQL on a store);
- `cli` (the `ewx ews` commands), which reaches the running node only
  through the operator API (and is the part that reads node.trilateral).

Nothing here imports gRPC or the gateway. Raw indicator figures never leave
the node: the only thing that crosses to a peer is the section 3 alert that
`drafts` builds, in bands.
"""
