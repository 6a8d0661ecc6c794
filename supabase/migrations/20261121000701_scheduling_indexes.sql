-- Scheduling: the weekly blocks are read by (mechanic, weekday) for every slots and free-at
-- query; the exclusion constraint's GiST index covers mechanic_id but the planner preferred a
-- sequential scan of all blocks (measured by bench/bench_scheduling.py).
create index mechanic_weekly_availability_mechanic_day_idx
  on public.mechanic_weekly_availability (mechanic_id, day_of_week);  -- slots, free-at
