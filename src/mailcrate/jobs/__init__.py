"""Export jobs: records and states (:mod:`.records`), limits (:mod:`.limits`), the database side
with claims and leases (:mod:`.store`) and the in-process worker pool (:mod:`.worker`)."""
