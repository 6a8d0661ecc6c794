-- Scheduling: the explicit overlap check of committed time.

-- ---------------------------------------------------------------------------------------------
-- Committed time: the explicit overlap check (the exclusion constraint stays the backstop)
-- ---------------------------------------------------------------------------------------------
-- Writers hold the mechanic's row lock, so this check is exact: on-demand work that would run
-- into a held or booked session fails with schedule_conflict (AD051); a hold or booking over
-- any committed time fails with slot_taken (AD050) — never a raw exclusion violation.
create or replace function private.tg_mechanic_commitments__check_free() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.status in ('held', 'confirmed', 'in_progress') and exists (
       select 1 from public.mechanic_commitments c
       where c.mechanic_id = new.mechanic_id and c.id <> new.id
         and c.status in ('held', 'confirmed', 'in_progress') and c.during && new.during) then
    if new.kind = 'on_demand' then
      perform private.raise_error('schedule_conflict',
        'this session would run into a booked session of yours: finish it before the booking starts');
    end if;
    perform private.raise_error('slot_taken', 'the time is no longer free');
  end if;
  return new;
end
$$;
drop trigger if exists _150_check_free on public.mechanic_commitments;
create trigger _150_check_free before insert or update of status, during on public.mechanic_commitments
  for each row execute function private.tg_mechanic_commitments__check_free();
revoke execute on function private.tg_mechanic_commitments__check_free() from public;
