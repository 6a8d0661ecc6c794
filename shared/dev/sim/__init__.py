"""`autodoctor simulate`: a synthetic city driven through the real system (docs/simulation.md).

- `spec`: what a run is (its options) and what each worker process is given.
- `metrics`: the files a run writes (calls, samples, request timings, faults) and their readers.
- `city`: the reference city (its peak hour, its day) and the seeding of a synthetic one.
- `client`: calls made as PostgREST makes them (role and claims per transaction) and timed.
- `actors`: mechanics and customers, run in worker processes.
- `probes`: queue depths, request → offer timings and the database's own statistics.
- `invariants`: the named checks, run during the run and at its end.
- `run`: the orchestration (database, functions, provider stubs, schedules, faults, workers).
- `report`: the HTML page, the PNG plots and `summary.json`.
"""
