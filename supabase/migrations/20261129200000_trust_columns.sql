-- Trust: the facts several domains read.
-- sessions.delivery: set when a session completes. `delivered` when both people took part (and it
-- lasted the minimum); `unverified` otherwise: then it is never settled automatically. Null for a
-- session that has not completed.
-- mechanics.customers_served: distinct customers with at least one delivered session with this
-- mechanic (what the ranking counts, so one customer's many sessions move it by one).
alter table public.sessions
  add column delivery text constraint sessions_delivery_values check (delivery in ('delivered', 'unverified')),
  add constraint sessions_delivery_when_completed check (delivery is null or status = 'completed');
alter table public.mechanics
  add column customers_served int not null default 0
    constraint mechanics_customers_served_nonneg check (customers_served >= 0);
comment on column public.sessions.delivery is
  'delivered (both took part, long enough) or unverified (completed without that evidence); null until completed';
comment on column public.mechanics.customers_served is
  'distinct customers with at least one delivered session with this mechanic';
