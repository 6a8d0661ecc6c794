-- Jobs: milestone emails, enqueued in the transaction of the change that causes them.

-- ---------------------------------------------------------------------------------------------
-- Emails: enqueued in the transaction of the change that causes them; rendered and sent by
-- the job worker (shared/email.py). One per (template, session, recipient). The template must be
-- registered (private.email_templates): a typo fails here, in the transaction that caused it.
-- ---------------------------------------------------------------------------------------------
create or replace function private.enqueue_email(
  p_template text, p_user_id uuid, p_session_id uuid, p_data jsonb default '{}', p_key_suffix text default ''
) returns bigint
language plpgsql security definer set search_path = ''
as $$
begin
  -- PL/pgSQL, so the call is planned once per session (every accept enqueues one)
  return private.enqueue(
    'email.send',
    format('email:%s:%s:%s%s', p_template, p_session_id, p_user_id, p_key_suffix),
    jsonb_build_object('template', p_template, 'user_id', p_user_id, 'session_id', p_session_id, 'data', p_data));
end
$$;
revoke execute on function private.enqueue_email(text, uuid, uuid, jsonb, text) from public;
grant execute on function private.enqueue_email(text, uuid, uuid, jsonb, text) to service_role;

create or replace function private.tg_sessions__milestone_emails() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.enqueue_email('booking_confirmed', new.customer_id, new.id);
    return null;
  end if;
  if new.mechanic_id is not null and new.mechanic_id is distinct from old.mechanic_id then
    -- sent only once the assignment has held (trust/contact.sql): an accept-and-release sends nothing
    perform private.enqueue_assignment_notice(new, now());
  end if;
  return null;
end
$$;
revoke execute on function private.tg_sessions__milestone_emails() from public;
drop trigger if exists _400_milestone_emails on public.sessions;
create trigger _400_milestone_emails after insert or update of mechanic_id on public.sessions
  for each row execute function private.tg_sessions__milestone_emails();

-- Lifecycle step (core/lifecycle.sql): a completed session tells the customer. The mechanic's
-- summary is emailed when the mechanic submits it (submit_summary, journey/summaries.sql), not here.
create or replace function private.emails_on_session_completed(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  select * into v_s from public.sessions where id = p_session_id;
  perform private.enqueue_email('session_ended', v_s.customer_id, v_s.id);
end
$$;
revoke execute on function private.emails_on_session_completed(uuid) from public;
grant execute on function private.emails_on_session_completed(uuid) to service_role;
