-- workshop_hooks: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql trust/contact.sql sha256=af42278cb0f7d0548935da86292dcfeae7bede069dd75480cb26956a8678005a
-- Trust: accept-and-release, the delayed assignment notice, and the RPCs that reach the columns of
-- public.mechanics that authenticated may not select (docs/trust.md, "Contact details, columns and
-- the waiver"). The contact window's policy helpers are in the migration (policies need them).

-- ---------------------------------------------------------------------------------------------
-- Accept-and-release
-- ---------------------------------------------------------------------------------------------
-- Records that mechanic `p_mechanic_id` released request `p_request_id` (called by cancel_request
-- with the mechanic's row not yet locked); reaching trust.max_releases_per_hour within the last
-- hour pauses its accepting for trust.release_cooldown.
create or replace function private.record_release(p_request_id uuid, p_mechanic_id uuid, p_now timestamptz)
returns void
language plpgsql security definer set search_path = ''
as $$
begin
  insert into private.request_releases (request_id, mechanic_id, released_at)
  values (p_request_id, p_mechanic_id, p_now);
  if (select count(*) from private.request_releases r
      where r.mechanic_id = p_mechanic_id and r.released_at > p_now - interval '1 hour')
     >= private.setting_int('trust.max_releases_per_hour') then
    update public.mechanics
    set releases_blocked_until = p_now + private.setting_interval('trust.release_cooldown')
    where id = p_mechanic_id;
  end if;
end
$$;
revoke execute on function private.record_release(uuid, uuid, timestamptz) from public;
grant execute on function private.record_release(uuid, uuid, timestamptz) to service_role;

-- The accept path's check (private.assign_request, after it locked the mechanic's row): one
-- indexed lookup for "released it before", and the row's releases_blocked_until.
create or replace function private.check_release_limits(
  p_mechanic public.mechanics, p_request_id uuid, p_now timestamptz
) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_mechanic.releases_blocked_until > p_now then
    perform private.raise_error('too_many_releases',
      format('you released %s accepted requests within an hour: accepting resumes at %s',
             private.setting_int('trust.max_releases_per_hour'), p_mechanic.releases_blocked_until));
  end if;
  if exists (select 1 from private.request_releases r
             where r.request_id = p_request_id and r.mechanic_id = p_mechanic.id) then
    perform private.raise_error('request_released', 'you released this request: it is for other mechanics now');
  end if;
end
$$;
revoke execute on function private.check_release_limits(public.mechanics, uuid, timestamptz) from public;
grant execute on function private.check_release_limits(public.mechanics, uuid, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The assignment notice: mechanic_assigned is enqueued notifications.assignment_notice_delay
-- after the accept, and sent only if that mechanic still holds the session then.
-- ---------------------------------------------------------------------------------------------
create or replace function private.enqueue_assignment_notice(p_session public.sessions, p_now timestamptz)
returns bigint
language plpgsql security definer set search_path = ''
as $$
begin
  return private.enqueue(
    'email.send',
    format('email:mechanic_assigned:%s:%s:%s', p_session.id, p_session.customer_id, p_session.mechanic_id),
    jsonb_build_object('template', 'mechanic_assigned', 'user_id', p_session.customer_id, 'session_id', p_session.id,
                       'data', jsonb_build_object('mechanic_id', p_session.mechanic_id)),
    p_now + private.setting_interval('notifications.assignment_notice_delay'));
end
$$;
revoke execute on function private.enqueue_assignment_notice(public.sessions, timestamptz) from public;
grant execute on function private.enqueue_assignment_notice(public.sessions, timestamptz) to service_role;

-- Whether an email job is still due when the worker sends it (shared/email.py skips it otherwise):
-- a mechanic_assigned notice only while that mechanic still holds the session.
create or replace function private.email_still_due(p_template text, p_session_id uuid, p_data jsonb) returns boolean
language sql stable security definer set search_path = ''
as $$
  select case when p_template = 'mechanic_assigned' then
    exists (select 1 from public.sessions s
            where s.id = p_session_id and s.mechanic_id::text = p_data ->> 'mechanic_id'
              and s.status in ('waiting', 'live', 'completed'))
  else true end
$$;
revoke execute on function private.email_still_due(text, uuid, jsonb) from public;
grant execute on function private.email_still_due(text, uuid, jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Columns of public.mechanics beyond the directory
-- ---------------------------------------------------------------------------------------------
-- The caller's own mechanic row, every column.
create or replace function public.get_my_mechanic() returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_row jsonb;
begin
  select to_jsonb(m) into v_row from public.mechanics m where m.id = v_uid;
  if v_row is null then
    perform private.raise_error('not_found', 'you have no mechanic profile');
  end if;
  return v_row;
end
$$;
revoke execute on function public.get_my_mechanic() from public, anon;
grant execute on function public.get_my_mechanic() to authenticated, service_role;

-- The members of a workshop the caller owns or administers (platform admins: any): role, name and
-- phone from the profile, and the full mechanic row of those who are mechanics.
create or replace function public.get_workshop_members(p_organization_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_organization_id', p_organization_id);
  if not private.is_admin() and not exists (
       select 1 from public.organization_members om
       where om.organization_id = p_organization_id and om.user_id = v_uid and om.role in ('owner', 'manager')) then
    -- the same answer whether or not the workshop exists
    perform private.raise_error('not_found', 'no such workshop among those you administer');
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object(
             'user_id', om.user_id, 'role', om.role, 'joined_at', om.created_at,
             'full_name', p.full_name, 'phone', p.phone, 'mechanic', to_jsonb(m))
           order by om.role, p.full_name, om.user_id)
    from public.organization_members om
    left join public.profiles p on p.id = om.user_id
    left join public.mechanics m on m.id = om.user_id
    where om.organization_id = p_organization_id), '[]'::jsonb);
end
$$;
revoke execute on function public.get_workshop_members(uuid) from public, anon;
grant execute on function public.get_workshop_members(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- The contact window of one session
-- ---------------------------------------------------------------------------------------------
-- Whether session `s` is, at `p_now`, inside its mechanic's contact window (the rule of
-- private.my_contact_sessions, the policies' helper in the migration: keep them the same).
create or replace function private.contact_window_open(s public.sessions, p_now timestamptz) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
begin
  if s.mechanic_id is null then
    return false;
  end if;
  if s.status = 'live' then
    return true;
  end if;
  return s.scheduled_for is not null
     and s.status in ('scheduled', 'waiting', 'completed')
     and p_now >= s.scheduled_for - private.setting_interval('contact.before_start')
     and p_now <= coalesce(s.ended_at,
                           s.scheduled_for + make_interval(mins => s.planned_minutes + s.extension_minutes))
                  + private.setting_interval('contact.after_end');
end
$$;
revoke execute on function private.contact_window_open(public.sessions, timestamptz) from public;
grant execute on function private.contact_window_open(public.sessions, timestamptz) to service_role;

-- ---------------------------------------------------------------------------------------------
-- What a session's mechanic needs to prepare, at any time (a booked session has no request row):
-- plan, time, concern and vehicle, never the customer's contact details or vehicle identifiers.
-- ---------------------------------------------------------------------------------------------
create or replace function public.get_session_brief(p_session_id uuid) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_brief jsonb;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select jsonb_build_object(
           'session_id', s.id, 'status', s.status, 'plan_code', s.plan_code, 'session_type', s.session_type,
           'planned_minutes', s.planned_minutes, 'scheduled_for', s.scheduled_for,
           'concern', i.concern, 'details', i.details,
           'vehicle_make', coalesce(v.make, i.vehicle_make), 'vehicle_model', coalesce(v.model, i.vehicle_model),
           'vehicle_year', coalesce(v.year, i.vehicle_year), 'odometer', coalesce(i.odometer, v.mileage),
           'contact_open', private.contact_window_open(s, now()))
  into v_brief
  from public.sessions s
  left join public.intakes i on i.id = s.intake_id
  left join public.vehicles v on v.id = s.vehicle_id
  where s.id = p_session_id
    and (s.mechanic_id = v_uid or s.customer_id = v_uid or private.is_admin());
  if v_brief is null then
    perform private.raise_error('not_found', 'no such session');
  end if;
  return v_brief;
end
$$;
revoke execute on function public.get_session_brief(uuid) from public, anon;
grant execute on function public.get_session_brief(uuid) to authenticated, service_role;
-- <<< functions_sql trust/contact.sql

-- >>> functions_sql workshops/hooks.sql sha256=6e37965dffc262e1e91a31a3892d296dcfb552d364101348064b9a40e09e7b92
-- Workshops: hooks other workshop concerns fill in. (Who may do what: private.workshop_role and
-- private.workshop_can, with the policies that use them, are in the migrations.)

-- Called when an appointment completes (workshops/appointments): the referral fee accrues.
create or replace function private.referral_on_appointment_completed(p_appointment_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform p_appointment_id;  -- nothing yet: the referral ledger fills this in
end
$$;
revoke execute on function private.referral_on_appointment_completed(uuid) from public;
grant execute on function private.referral_on_appointment_completed(uuid) to service_role;
-- <<< functions_sql workshops/hooks.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=97061e15165f3460c9f89023ee7162fa3b68d758e42d9d514665d237c6eb604d
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=b1783170c8d43ebf2ade46245be38fd317ffe58a334d115034c123e35b92dc00
-- functions_sql-manifest core/rpc.sql sha256=0afd2101e03a88382d75a94895222335664c23bbd705275deaab3bbc2cee17ea
-- functions_sql-manifest core/sessions.sql sha256=2acb446aaeef473e102cfb4ec05a8226727c6cfadc1d3671e215e188c8b5a9d4
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=db635bd482915c74b6fcdf0a8cc48a20726515e7cdb0adf29ae02a7cf96d60ab
-- functions_sql-manifest jobs/nudges.sql sha256=2c190ede7b490ef8f2ff1cd61d1b4a4b5a7c9222e325f13f0cee406020ebb121
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=4e8e976a728a09a61379714146d22924855ca524ca7f4e2f392532bcc31e80d1
-- functions_sql-manifest jobs/sweep_requests.sql sha256=b71a7b97d2dec4579abcbd95477cd30cdcb2e1eb45123abd343bd2aaf4b2d948
-- functions_sql-manifest matching/eligibility.sql sha256=eff05764dacec6d36fe29bd5115957a4f5b6f99fc84ba99dc8ffc3a8d3e8c7e4
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=3fe126794fb7ae8aeaac46108933767ecec0f7430e52b0c0fdf954eeeafeb649
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- functions_sql-manifest matching/ranking.sql sha256=79691d024eea19b79204a38924e802489e5bcd816e4517eec8bb57b87eb0be94
-- functions_sql-manifest matching/routing.sql sha256=b3a2f3e4e7eeed9b1c5a4d10136809fb13dd99f0d72fa5018c2384fc8a52a7cf
-- functions_sql-manifest micro/caps.sql sha256=09d21b2135fa52edd7a9e0f23450755c2393a33a9ad0d19d54a0cc643a10a10a
-- functions_sql-manifest micro/clock.sql sha256=4eb4a4e6af7d64879a0bba9e7377c64ee1297da824edb94e3cdfc9393ea7d280
-- functions_sql-manifest micro/dashboards.sql sha256=87de41f51896fe6618f4546f3232db8ebc05fe1321b1368be3738ed7ec7adfa9
-- functions_sql-manifest micro/settings.sql sha256=493874142af29110c71f935052e330a06823ec4d0a1eaa08b0c273666ea539fd
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=6b2edd65f5b39f3aa6a8673a415c393753c9fd18a44e634ce746636ae401f384
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=13795330ae99c92e63c7033ece7f02289a627ad3178c354ec67f339917bef043
-- functions_sql-manifest payments/refunds.sql sha256=9540ac9af6a807956c3a22edcd20aea9a30bbddb0900b8c42d80ee3886f0ca8a
-- functions_sql-manifest payments/settlement.sql sha256=61eab335038603d3c5ca74c4d5482699ff096571f76b57d4ec1be1fe4f84f015
-- functions_sql-manifest payments/stripe_events.sql sha256=19f646e133262b47e99dbe1c8ff74e408899abaee620c4a62c9b2ea91c099792
-- functions_sql-manifest payments/stripe_worker.sql sha256=975d130e426303bdea81476466bee8043ca0f20ec5192fbf1845a1fb8db84265
-- functions_sql-manifest reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- functions_sql-manifest reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- functions_sql-manifest reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- functions_sql-manifest reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- functions_sql-manifest rooms/access.sql sha256=a07718bc391f20859bd2562f9ed876e7465f94d1363c6673677a15292db0ce36
-- functions_sql-manifest rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
-- functions_sql-manifest rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- functions_sql-manifest rooms/timers.sql sha256=5265ead1f8b4bfd63c4236d6fc0d07afe4bc0053d21060682f6d557b921261c8
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=6ba1e8bdbaf284ff3c92a76157bc70f073d3a842761f80369e14aa6cebf35514
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=fd78b54227728a48cd2ea95a1fb64e3d5389e40fdd95ea5070ff511d77f5e4f4
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=aefc0baa5011c8d6243dc426251306b273c06e0e3b8cfb8fc629d5c258ae32c9
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=80e66dfab8e5e885da721fd24e96a859f0414b15c115b629c3713175da08cd35
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=4a300a2863905f3ba4bac94f8c68b972ce223b96c2d83e3c9b53abc4b0d02805
-- functions_sql-manifest scheduling/reminders.sql sha256=025401df24f13a2de6d28c5ef71abd2134b287a87e25f0a98b395e69bc743734
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
-- functions_sql-manifest trust/contact.sql sha256=af42278cb0f7d0548935da86292dcfeae7bede069dd75480cb26956a8678005a
-- functions_sql-manifest trust/delivery.sql sha256=a44ca8da36bdde676c007841e25980139b23945eab7fe6f5580feec057c61d03
-- functions_sql-manifest trust/limits.sql sha256=f8317282989aefc92e368510883453bceea024dbaaae3d9836d326ad0a5328b6
-- functions_sql-manifest trust/pricing.sql sha256=3075961d25ecc4ccd99e6bbf25ad3012a836d5697935c502ed26095ec7359950
-- functions_sql-manifest trust/rate_limit.sql sha256=dc51a19ec7cff8e1b01d341ec68e6f3c11de7c17d23ef7185b0b0c79850bcb2c
-- functions_sql-manifest trust/standing.sql sha256=9bd4e9285f6eaef814fee4f492354878c824fe6cd88f0c76005eab6032938f80
-- functions_sql-manifest trust/waiver.sql sha256=e55e17a34963e554f36bec304c2212fe7765268192081a2d2502a28c9ca38b41
-- functions_sql-manifest workshops/hooks.sql sha256=6e37965dffc262e1e91a31a3892d296dcfb552d364101348064b9a40e09e7b92
