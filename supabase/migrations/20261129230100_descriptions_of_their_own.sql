-- Descriptions stored in the database state their rule and its reason themselves (the same words
-- as docs/payments.md, docs/data-model.md and docs/scheduling.md), with no reference to anything
-- outside the repository.
update public.revenue_split_rules set description = case
    when mechanic_type = 'virtual_only' and session_kind = 'default'
      then 'a virtual-only mechanic is paid directly: mechanic 70%, platform 30%'
    when mechanic_type = 'independent_workshop' and session_kind = 'default'
      then 'an owner-operator is paid directly: mechanic 70%, platform 30%'
    when mechanic_type = 'workshop_affiliated' and session_kind = 'default'
      then 'a workshop-affiliated mechanic is paid through its workshop: workshop 70%, platform 30%'
    when mechanic_type = 'workshop_affiliated' and session_kind = 'micro_on_shift'
      then 'an on-shift micro session of a workshop''s mechanic (on the workshop''s time): mechanic 65%, workshop 15%, platform 20%'
    else description end
where description ~* 'seed';

comment on column public.mechanics.mechanic_type is
  'Derived: no workshop → virtual_only; workshop + workshop_mechanic → workshop_affiliated; '
  'workshop + individual_mechanic → independent_workshop.';
comment on table public.mechanic_weekly_availability is
  'Weekly blocks as local wall-clock times in the mechanic''s zone; price_multiplier prices peak and '
  'off-peak hours (0.25–5 × the plan''s price).';
