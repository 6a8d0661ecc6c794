-- Micro-sessions: participation mode and cap settings.

-- A mechanic sets its own participation mode; its workshop (owner/admin) or a platform admin sets
-- mode and cap. p_daily_cap null keeps the cap; -1 clears it (back to the workshop's default).
create or replace function public.set_mechanic_micro_settings(
  p_mechanic_id uuid, p_participation_mode text default null, p_daily_cap int default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_staff boolean;
begin
  if p_mechanic_id is null or (p_participation_mode is not null
                               and p_participation_mode not in ('micro_only', 'full_only', 'both'))
     or (p_daily_cap is not null and (p_daily_cap < -1 or p_daily_cap > 1440)) then
    perform private.raise_error('invalid_input', 'mode micro_only/full_only/both; cap 0..1440 (-1 clears)');
  end if;
  v_staff := private.is_admin() or exists (select 1 from public.mechanics m where m.id = p_mechanic_id
                                           and private.workshop_can(m.organization_id, v_uid, 'micro_settings'));
  if not v_staff and (p_mechanic_id <> v_uid or p_daily_cap is not null) then
    perform private.raise_error('not_allowed', 'a mechanic sets its mode; its workshop or an admin sets caps');
  end if;
  update public.mechanics
  set participation_mode = coalesce(p_participation_mode::public.participation_mode, participation_mode),
      daily_micro_minutes_cap = case when p_daily_cap is null then daily_micro_minutes_cap
                                     when p_daily_cap = -1 then null else p_daily_cap end
  where id = p_mechanic_id;
  if not found then
    perform private.raise_error('not_found', 'no such mechanic');
  end if;
  return jsonb_build_object('mechanic_id', p_mechanic_id,
                            'participation_mode', (select participation_mode from public.mechanics where id = p_mechanic_id),
                            'daily_micro_minutes_cap', private.micro_cap(p_mechanic_id));
end
$$;
revoke execute on function public.set_mechanic_micro_settings(uuid, text, int) from public, anon;
grant execute on function public.set_mechanic_micro_settings(uuid, text, int) to authenticated, service_role;
