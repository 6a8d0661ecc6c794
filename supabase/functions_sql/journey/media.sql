-- Journey: photos and short videos attached to an intake before the match
-- (docs/journey.md#media-before-the-match). The bucket, its policies and their helpers are in the
-- migration that made them (policies are checked when created); this file lists the files.

-- The intake a request was filed from, or a session's intake (null when none). Definer: a mechanic
-- deciding on a request cannot read the session row yet. Callers check visibility first.
create or replace function private.request_or_session_intake_id(p_request_id uuid, p_session_id uuid) returns uuid
language sql stable security definer set search_path = ''
as $$
  select s.intake_id from public.sessions s
  where (p_request_id is not null and s.id = (select r.session_id from public.session_requests r where r.id = p_request_id))
     or (p_request_id is null and s.id = p_session_id)
$$;
revoke execute on function private.request_or_session_intake_id(uuid, uuid) from public;
grant execute on function private.request_or_session_intake_id(uuid, uuid) to authenticated, service_role;

-- The files of the intake behind a request (a mechanic deciding whether to take it; its customer)
-- or behind a session (its participants): [{name, size, mimetype, created_at}], oldest first. The
-- caller passes one of the two ids. The request or session must be visible to the caller (else
-- not_found); the files listed are those Storage lets the caller read (the intake-files policies).
-- Security invoker on purpose: both answers come from the caller's own row level security, so the
-- list is exactly what the caller could sign URLs for (createSignedUrl on bucket intake-files).
create or replace function public.list_intake_files(p_request_id uuid default null, p_session_id uuid default null)
returns jsonb
language plpgsql stable security invoker set search_path = ''
as $$
declare
  v_intake uuid;
begin
  perform private.require_user();
  if (p_request_id is null) = (p_session_id is null) then
    perform private.raise_error('invalid_input', 'pass exactly one of p_request_id and p_session_id');
  end if;
  if p_request_id is not null then
    perform 1 from public.session_requests r where r.id = p_request_id;
  else
    perform 1 from public.sessions s where s.id = p_session_id;
  end if;
  if not found then
    perform private.raise_error('not_found', case when p_request_id is not null then 'no such request' else 'no such session' end);
  end if;
  v_intake := private.request_or_session_intake_id(p_request_id, p_session_id);
  if v_intake is null then
    return '[]'::jsonb;
  end if;
  return coalesce((
    select jsonb_agg(jsonb_build_object('name', o.name, 'size', o.metadata -> 'size',
                                        'mimetype', o.metadata -> 'mimetype', 'created_at', o.created_at)
                     order by o.created_at, o.name)
    from storage.objects o
    where o.bucket_id = 'intake-files' and o.name like 'intakes/' || v_intake::text || '/%'), '[]'::jsonb);
end
$$;
revoke execute on function public.list_intake_files(uuid, uuid) from public, anon;
grant execute on function public.list_intake_files(uuid, uuid) to authenticated, service_role;
