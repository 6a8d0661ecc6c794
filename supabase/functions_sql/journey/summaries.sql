-- Journey: the mechanic's structured summary (docs/journey.md#structured-summary).
--
-- public.session_summaries holds one draft at most per session and every submitted version. The
-- mechanic saves the draft from the moment the session is live until summaries.submit_window after
-- its end, and submits it once the session completed, within the same window; a correction is a
-- new draft (the next version) submitted again. The customer reads the submitted versions only.

-- ---------------------------------------------------------------------------------------------
-- Validation: one coded error (summary_invalid) naming the field path; nothing is written
-- ---------------------------------------------------------------------------------------------
create or replace function private.summary_invalid(p_path text, p_reason text) returns void
language plpgsql stable set search_path = ''
as $$
begin
  perform private.raise_error('summary_invalid', format('%s: %s', p_path, p_reason), p_path);
end
$$;
revoke execute on function private.summary_invalid(text, text) from public;
grant execute on function private.summary_invalid(text, text) to service_role;

-- A JSON string, trimmed, 1..p_max characters; JSON null is null unless required.
create or replace function private.summary_text(p_path text, p_value jsonb, p_max int, p_required boolean)
returns text
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null or jsonb_typeof(p_value) = 'null' then
    if p_required then
      perform private.summary_invalid(p_path, 'is required');
    end if;
    return null;
  end if;
  if jsonb_typeof(p_value) <> 'string' then
    perform private.summary_invalid(p_path, 'must be a string');
  end if;
  if btrim(p_value #>> '{}') = '' then
    perform private.summary_invalid(p_path, 'must not be empty');
  end if;
  if char_length(btrim(p_value #>> '{}')) > p_max then
    perform private.summary_invalid(p_path, format('must be at most %s characters', p_max));
  end if;
  return btrim(p_value #>> '{}');
end
$$;
revoke execute on function private.summary_text(text, jsonb, int, boolean) from public;
grant execute on function private.summary_text(text, jsonb, int, boolean) to service_role;

-- A JSON array of at most summaries.max_items elements (absent or null: empty).
create or replace function private.summary_array(p_path text, p_value jsonb, p_max int) returns jsonb
language plpgsql stable set search_path = ''
as $$
begin
  if p_value is null or jsonb_typeof(p_value) = 'null' then
    return '[]'::jsonb;
  end if;
  if jsonb_typeof(p_value) <> 'array' then
    perform private.summary_invalid(p_path, 'must be an array');
  end if;
  if jsonb_array_length(p_value) > p_max then
    perform private.summary_invalid(p_path, format('must have at most %s items', p_max));
  end if;
  return p_value;
end
$$;
revoke execute on function private.summary_array(text, jsonb, int) from public;
grant execute on function private.summary_array(text, jsonb, int) to service_role;

-- The summary a mechanic sends, checked and normalised (strings trimmed, absent lists empty):
-- {findings, steps_taken, parts, next_steps, urgency, photo_paths}. Paths count from 0
-- (parts[0] is the first part). A photo is an object of this session's files
-- (session-files: sessions/<session_id>/…) or of its intake's (intake-files: intakes/<intake_id>/…)
-- that exists in Storage.
create or replace function private.summary_validate(p_session public.sessions, p_summary jsonb) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_max int := private.setting_int('summaries.max_items');
  v_max_cost int := private.setting_int('summaries.max_part_cost_cents');
  v_key text;
  v_item jsonb;
  v_i int;
  v_steps jsonb := '[]';
  v_next jsonb := '[]';
  v_parts jsonb := '[]';
  v_photos text[] := '{}';
  v_path text;
  v_cost jsonb;
  v_urgency text;
  v_list text;
begin
  if p_summary is null or jsonb_typeof(p_summary) <> 'object' then
    perform private.summary_invalid('$', 'must be a JSON object');
  end if;
  for v_key in select jsonb_object_keys(p_summary) loop
    if v_key not in ('findings', 'steps_taken', 'parts', 'next_steps', 'urgency', 'photo_paths') then
      perform private.summary_invalid(v_key, 'is not a field of a summary');
    end if;
  end loop;
  foreach v_list in array array['steps_taken', 'next_steps'] loop
    v_i := 0;
    for v_item in select e from jsonb_array_elements(private.summary_array(v_list, p_summary -> v_list, v_max)) e loop
      if v_list = 'steps_taken' then
        v_steps := v_steps || to_jsonb(private.summary_text(format('%s[%s]', v_list, v_i), v_item, 500, true));
      else
        v_next := v_next || to_jsonb(private.summary_text(format('%s[%s]', v_list, v_i), v_item, 500, true));
      end if;
      v_i := v_i + 1;
    end loop;
  end loop;
  v_i := 0;
  for v_item in select e from jsonb_array_elements(private.summary_array('parts', p_summary -> 'parts', v_max)) e loop
    v_path := format('parts[%s]', v_i);
    if jsonb_typeof(v_item) <> 'object' then
      perform private.summary_invalid(v_path, 'must be an object {name, part_number, estimated_cost_cents}');
    end if;
    for v_key in select jsonb_object_keys(v_item) loop
      if v_key not in ('name', 'part_number', 'estimated_cost_cents') then
        perform private.summary_invalid(v_path || '.' || v_key, 'is not a field of a part');
      end if;
    end loop;
    v_cost := v_item -> 'estimated_cost_cents';
    if v_cost is not null and jsonb_typeof(v_cost) <> 'null' then
      if jsonb_typeof(v_cost) <> 'number' or (v_cost #>> '{}')::numeric <> trunc((v_cost #>> '{}')::numeric)
         or (v_cost #>> '{}')::numeric not between 0 and v_max_cost then
        perform private.summary_invalid(v_path || '.estimated_cost_cents',
          format('must be a whole number of cents between 0 and %s', v_max_cost));
      end if;
    else
      v_cost := 'null';
    end if;
    v_parts := v_parts || jsonb_build_array(jsonb_build_object(
      'name', private.summary_text(v_path || '.name', v_item -> 'name', 200, true),
      'part_number', private.summary_text(v_path || '.part_number', v_item -> 'part_number', 100, false),
      'estimated_cost_cents', case when jsonb_typeof(v_cost) = 'null' then null else (v_cost #>> '{}')::numeric::int end));
    v_i := v_i + 1;
  end loop;
  v_urgency := coalesce(private.summary_text('urgency', p_summary -> 'urgency', 40, false), 'none');
  if v_urgency not in ('none', 'soon', 'urgent', 'unsafe_to_drive') then
    perform private.summary_invalid('urgency', 'must be one of none, soon, urgent, unsafe_to_drive');
  end if;
  v_i := 0;
  for v_item in select e from jsonb_array_elements(private.summary_array('photo_paths', p_summary -> 'photo_paths', 20)) e loop
    v_path := private.summary_text(format('photo_paths[%s]', v_i), v_item, 1024, true);
    if v_path = any (v_photos) then
      perform private.summary_invalid(format('photo_paths[%s]', v_i), 'is listed twice');
    end if;
    if not exists (select 1 from storage.objects o
                   where (o.bucket_id = 'session-files' and o.name = v_path
                          and v_path like 'sessions/' || p_session.id::text || '/%')
                      or (o.bucket_id = 'intake-files' and o.name = v_path and p_session.intake_id is not null
                          and v_path like 'intakes/' || p_session.intake_id::text || '/%')) then
      perform private.summary_invalid(format('photo_paths[%s]', v_i),
        'is not a file of this session or of its intake');
    end if;
    v_photos := v_photos || v_path;
    v_i := v_i + 1;
  end loop;
  return jsonb_build_object(
    'findings', private.summary_text('findings', p_summary -> 'findings', 8000, false),
    'steps_taken', v_steps, 'parts', v_parts, 'next_steps', v_next, 'urgency', v_urgency,
    'photo_paths', to_jsonb(v_photos));
end
$$;
revoke execute on function private.summary_validate(public.sessions, jsonb) from public;
grant execute on function private.summary_validate(public.sessions, jsonb) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Reading and writing
-- ---------------------------------------------------------------------------------------------
create or replace function private.summary_json(p_row public.session_summaries) returns jsonb
language sql stable set search_path = ''
as $$
  select case when p_row.id is null then null else jsonb_build_object(
    'id', p_row.id, 'session_id', p_row.session_id, 'version', p_row.version, 'status', p_row.status,
    'author_id', p_row.author_id, 'findings', p_row.findings, 'steps_taken', p_row.steps_taken,
    'parts', p_row.parts, 'next_steps', p_row.next_steps, 'urgency', p_row.urgency,
    'photo_paths', to_jsonb(p_row.photo_paths), 'created_at', p_row.created_at, 'updated_at', p_row.updated_at,
    'submitted_at', p_row.submitted_at) end
$$;
revoke execute on function private.summary_json(public.session_summaries) from public;
grant execute on function private.summary_json(public.session_summaries) to service_role;

-- The session's draft with `p_fields` (keys of the normalised summary) written over it; a new
-- draft (version = last + 1, starting from the latest submitted version) when there is none.
-- The caller holds the session's row lock, so two writers never both create a draft.
create or replace function private.summary_write_draft(p_session public.sessions, p_author uuid, p_fields jsonb)
returns public.session_summaries
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_row public.session_summaries;
begin
  select * into v_row from public.session_summaries where session_id = p_session.id and status = 'draft' for update;
  if v_row.id is null then
    select * into v_row from public.session_summaries where session_id = p_session.id
    order by version desc limit 1;
    insert into public.session_summaries (session_id, version, status, author_id, findings, steps_taken, parts,
                                          next_steps, urgency, photo_paths)
    values (p_session.id, coalesce(v_row.version, 0) + 1, 'draft', p_author, v_row.findings,
            coalesce(v_row.steps_taken, '[]'), coalesce(v_row.parts, '[]'), coalesce(v_row.next_steps, '[]'),
            coalesce(v_row.urgency, 'none'), coalesce(v_row.photo_paths, '{}'))
    returning * into v_row;
  end if;
  update public.session_summaries s set
    author_id = p_author,
    findings = case when p_fields ? 'findings' then p_fields ->> 'findings' else s.findings end,
    steps_taken = coalesce(p_fields -> 'steps_taken', s.steps_taken),
    parts = coalesce(p_fields -> 'parts', s.parts),
    next_steps = coalesce(p_fields -> 'next_steps', s.next_steps),
    urgency = coalesce(p_fields ->> 'urgency', s.urgency),
    photo_paths = case when p_fields ? 'photo_paths'
                       then array(select jsonb_array_elements_text(p_fields -> 'photo_paths')) else s.photo_paths end,
    updated_at = now()
  where s.id = v_row.id
  returning * into v_row;
  return v_row;
end
$$;
revoke execute on function private.summary_write_draft(public.sessions, uuid, jsonb) from public;
grant execute on function private.summary_write_draft(public.sessions, uuid, jsonb) to service_role;

-- The session, locked, when the caller is its mechanic; not_found for strangers, not_allowed for
-- its customer (a customer never writes the mechanic's summary).
create or replace function private.summary_lock_session(p_session_id uuid, p_uid uuid) returns public.sessions
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_s public.sessions := private.lock_session_as_participant(p_session_id, p_uid);
begin
  if v_s.mechanic_id is distinct from p_uid then
    perform private.raise_error('not_allowed', 'only the session''s mechanic writes its summary');
  end if;
  return v_s;
end
$$;
revoke execute on function private.summary_lock_session(uuid, uuid) from public;
grant execute on function private.summary_lock_session(uuid, uuid) to service_role;

-- Whether the summary of session `p_s` may still be written at `p_now`: live, or completed and
-- within summaries.submit_window of its end. Raises the reason otherwise.
create or replace function private.summary_check_open(p_s public.sessions, p_now timestamptz, p_submit boolean)
returns void
language plpgsql stable set search_path = ''
as $$
begin
  if p_s.status = 'live' and p_submit then
    perform private.raise_error('summary_not_submittable', 'the session is live: submit its summary once it ended');
  end if;
  if p_s.status not in ('live', 'completed') then
    perform private.raise_error('summary_not_open', format('the session is %s: it has no summary', p_s.status));
  end if;
  if p_s.status = 'completed' and p_now > p_s.ended_at + private.setting_interval('summaries.submit_window') then
    perform private.raise_error('summary_window_closed',
      format('the summary could be written until %s', p_s.ended_at + private.setting_interval('summaries.submit_window')));
  end if;
end
$$;
revoke execute on function private.summary_check_open(public.sessions, timestamptz, boolean) from public;
grant execute on function private.summary_check_open(public.sessions, timestamptz, boolean) to service_role;

-- ---------------------------------------------------------------------------------------------
-- RPCs
-- ---------------------------------------------------------------------------------------------
-- The session's mechanic saves the draft: the whole summary as given (absent lists are empty,
-- absent urgency is none). Returns the draft.
create or replace function public.save_summary(p_session_id uuid, p_summary jsonb) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_s public.sessions;
  v_fields jsonb;
begin
  perform private.require_arg('p_session_id', p_session_id);
  v_s := private.summary_lock_session(p_session_id, v_uid);
  v_fields := private.summary_validate(v_s, p_summary);
  perform private.summary_check_open(v_s, now(), false);
  return private.summary_json(private.summary_write_draft(v_s, v_uid, v_fields));
end
$$;
revoke execute on function public.save_summary(uuid, jsonb) from public, anon;
grant execute on function public.save_summary(uuid, jsonb) to authenticated, service_role;

-- The summary as the customer's email shows it: parts with their costs in words, the total.
create or replace function private.summary_email_data(p_row public.session_summaries, p_s public.sessions) returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'id', p_row.id, 'version', p_row.version,
    'corrected', exists (select 1 from public.session_summaries x
                         where x.session_id = p_row.session_id and x.status = 'submitted' and x.version < p_row.version),
    'findings', p_row.findings, 'steps_taken', p_row.steps_taken, 'next_steps', p_row.next_steps,
    'urgency', p_row.urgency,
    'parts', coalesce((select jsonb_agg(jsonb_build_object(
                         'name', e ->> 'name', 'part_number', e ->> 'part_number',
                         'estimated_cost', case when e ->> 'estimated_cost_cents' is null then null
                           else private.summary_money((e ->> 'estimated_cost_cents')::bigint, p_s.currency) end)
                         order by n)
                       from jsonb_array_elements(p_row.parts) with ordinality as t(e, n)), '[]'),
    'parts_total', case when exists (select 1 from jsonb_array_elements(p_row.parts) e
                                     where e ->> 'estimated_cost_cents' is not null)
                   then private.summary_money((select sum((e ->> 'estimated_cost_cents')::bigint)
                                               from jsonb_array_elements(p_row.parts) e)::bigint, p_s.currency) end,
    'photo_count', cardinality(p_row.photo_paths))
$$;
revoke execute on function private.summary_email_data(public.session_summaries, public.sessions) from public;
grant execute on function private.summary_email_data(public.session_summaries, public.sessions) to service_role;

-- 12345 cents, usd → "123.45 USD".
create or replace function private.summary_money(p_cents bigint, p_currency text) returns text
language sql immutable set search_path = ''
as $$ select to_char(p_cents / 100.0, 'FM999999999990.00') || ' ' || upper(p_currency) $$;
revoke execute on function private.summary_money(bigint, text) from public;
grant execute on function private.summary_money(bigint, text) to service_role;

-- The session's mechanic submits the draft once the session completed, within
-- summaries.submit_window of its end: the customer gets the summary_delivered email (each version
-- its own) and a summary_ready event on session:<id>; the journey's rules read it
-- (journey_on_summary_submitted). Two submits at once: the session's row lock orders them, the
-- second finds no draft (summary_not_submittable).
-- Submits the draft `p_row` of session `p_s`: the version is final, the customer gets the
-- summary_delivered email and the session's topic a summary_ready event, and the recommendation
-- rules that read a summary run (journey/hooks.sql).
create or replace function private.summary_submit(p_s public.sessions, p_row public.session_summaries)
returns public.session_summaries
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_row public.session_summaries;
begin
  if p_row.findings is null then
    perform private.summary_invalid('findings', 'is required to submit');
  end if;
  update public.session_summaries set status = 'submitted', submitted_at = now(), updated_at = now()
  where id = p_row.id
  returning * into v_row;
  perform private.enqueue_email('summary_delivered', p_s.customer_id, p_s.id,
                                jsonb_build_object('summary', private.summary_email_data(v_row, p_s)),
                                format(':v%s', v_row.version));
  perform realtime.send(jsonb_build_object('session_id', p_s.id, 'summary_id', v_row.id, 'version', v_row.version,
                                           'urgency', v_row.urgency),
                        'summary_ready', 'session:' || p_s.id::text, true);
  perform private.journey_on_summary_submitted(p_s.id, v_row.id);
  return v_row;
end
$$;
revoke execute on function private.summary_submit(public.sessions, public.session_summaries) from public;
grant execute on function private.summary_submit(public.sessions, public.session_summaries) to service_role;

create or replace function public.submit_summary(p_session_id uuid) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_s public.sessions;
  v_row public.session_summaries;
begin
  perform private.require_arg('p_session_id', p_session_id);
  v_s := private.summary_lock_session(p_session_id, v_uid);
  perform private.summary_check_open(v_s, now(), true);
  select * into v_row from public.session_summaries where session_id = v_s.id and status = 'draft' for update;
  if v_row.id is null then
    perform private.raise_error('summary_not_submittable', 'there is no draft to submit: save one first');
  end if;
  return private.summary_json(private.summary_submit(v_s, v_row));
end
$$;
revoke execute on function public.submit_summary(uuid) from public, anon;
grant execute on function public.submit_summary(uuid) to authenticated, service_role;

-- A session's summary: {session_id, latest, history, draft}. latest is the newest submitted version
-- (null before the first submit), history every submitted version newest first, draft the open
-- draft (the mechanic and admins only; null for the customer). Readers: the session's customer,
-- its mechanic, admins; anyone else not_found. The customer's first read of each submitted
-- version is recorded as summary_viewed (crm_interactions).
create or replace function public.get_session_summary(p_session_id uuid) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
  v_s public.sessions;
  v_admin boolean := private.is_admin();
  v_latest public.session_summaries;
  v_draft public.session_summaries;
  v_history jsonb;
begin
  perform private.require_arg('p_session_id', p_session_id);
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.id is null or not (v_admin or v_s.customer_id = v_uid or v_s.mechanic_id is not distinct from v_uid) then
    perform private.raise_error('not_found', 'no such session');
  end if;
  select * into v_latest from public.session_summaries
  where session_id = v_s.id and status = 'submitted' order by version desc limit 1;
  select coalesce(jsonb_agg(private.summary_json(x) order by x.version desc), '[]') into v_history
  from public.session_summaries x where x.session_id = v_s.id and x.status = 'submitted';
  if v_admin or v_s.mechanic_id is not distinct from v_uid then
    select * into v_draft from public.session_summaries where session_id = v_s.id and status = 'draft';
  end if;
  if v_s.customer_id = v_uid and v_latest.id is not null
     and not exists (select 1 from public.crm_interactions c
                     where c.customer_id = v_uid and c.kind = 'summary_viewed' and c.subject_id = v_latest.id) then
    perform private.crm_record(v_uid, 'summary_viewed', now(), v_s.intake_id, v_s.id, v_latest.id,
                               jsonb_build_object('version', v_latest.version));
  end if;
  return jsonb_build_object('session_id', v_s.id, 'latest', private.summary_json(v_latest), 'history', v_history,
                            'draft', private.summary_json(v_draft));
end
$$;
revoke execute on function public.get_session_summary(uuid) from public, anon;
grant execute on function public.get_session_summary(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Lifecycle step (journey/hooks.sql): a completed session's summary window opens. The notes a
-- mechanic passes to end_session become the findings of the draft (created when there is none),
-- so clients that only send notes still leave a summary to submit; sessions.mechanic_notes keeps
-- them too.
-- ---------------------------------------------------------------------------------------------
create or replace function private.summaries_on_session_completed(p_session_id uuid, p_delivery text) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_untouched boolean;
  v_row public.session_summaries;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.mechanic_notes is null or v_s.mechanic_id is null then
    return;
  end if;
  -- A client that never wrote a structured summary for this session (only end_session's notes)
  -- gets what it always had: the notes delivered to the customer at the end, as version 1. A
  -- client that keeps a draft gets the notes as the draft's findings and submits it itself.
  v_untouched := not exists (select 1 from public.session_summaries x where x.session_id = v_s.id);
  if v_untouched or not exists (select 1 from public.session_summaries x
                                where x.session_id = v_s.id and x.status = 'draft'
                                  and x.findings = v_s.mechanic_notes) then
    v_row := private.summary_write_draft(v_s, v_s.mechanic_id, jsonb_build_object('findings', v_s.mechanic_notes));
    if v_untouched then
      perform private.summary_submit(v_s, v_row);
    end if;
  end if;
end
$$;
revoke execute on function private.summaries_on_session_completed(uuid, text) from public;
grant execute on function private.summaries_on_session_completed(uuid, text) to service_role;
