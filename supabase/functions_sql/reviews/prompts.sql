-- Reviews: the review prompt. An hour (reviews.prompt_delay) after a delivered session ended, its
-- customer is asked for a review unless one exists by then; the sender asks
-- private.review_prompt_skip_reason at delivery time and skips the email when it gives a reason.

-- Lifecycle step (called by private.complete_session when a session completes as delivered).
create or replace function private.reviews_on_session_delivered(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.id is null or v_s.delivery is distinct from 'delivered' then
    return;
  end if;
  perform private.enqueue(
    'email.send',
    format('email:review_prompt:%s:%s', v_s.id, v_s.customer_id),
    jsonb_build_object('template', 'review_prompt', 'user_id', v_s.customer_id, 'session_id', v_s.id,
                       'data', '{}'::jsonb),
    coalesce(v_s.ended_at, now()) + private.setting_interval('reviews.prompt_delay'));
end
$$;
revoke execute on function private.reviews_on_session_delivered(uuid) from public;
grant execute on function private.reviews_on_session_delivered(uuid) to service_role;

-- Why a review prompt should not go out any more (null: send it): a review exists, the session is
-- no longer delivered (an admin's decision), or the time to review it is over.
create or replace function private.review_prompt_skip_reason(p_session_id uuid, p_now timestamptz default now())
returns text
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_s public.sessions;
begin
  select * into v_s from public.sessions where id = p_session_id;
  if v_s.id is null or v_s.status <> 'completed' or v_s.delivery is distinct from 'delivered' then
    return 'the session is not delivered';
  end if;
  if exists (select 1 from public.mechanic_reviews r where r.session_id = p_session_id) then
    return 'a review was written';
  end if;
  if p_now > v_s.ended_at + private.setting_interval('reviews.submit_window') then
    return 'the review window closed';
  end if;
  return null;
end
$$;
revoke execute on function private.review_prompt_skip_reason(uuid, timestamptz) from public;
grant execute on function private.review_prompt_skip_reason(uuid, timestamptz) to service_role;
