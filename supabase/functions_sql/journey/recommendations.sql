-- Journey: recommendations (docs/journey.md#recommendations). The rules are rows of
-- public.recommendation_rules; this file is the one evaluator that reads them, the funnel RPCs
-- (shown, clicked) and the purchase attribution (a paid booking of the plan, a follow-up, a
-- workshop appointment).

-- ---------------------------------------------------------------------------------------------
-- Evaluation
-- ---------------------------------------------------------------------------------------------
-- The verified workshops near a customer, as the public directory shows them
-- (private.workshop_cards): customers give a city and a postal code, never coordinates, so "near"
-- is the city of the session's intake (else of the customer's profile), the customer's postal area
-- first, then the best rated. No city: no workshop is near.
create or replace function private.recommendations_nearby_workshops(p_customer_id uuid, p_intake_id uuid, p_limit int)
returns jsonb
language sql stable security definer set search_path = ''
as $$
  with here as (
    select lower(btrim(coalesce(nullif(btrim(i.city), ''), nullif(btrim(p.city), '')))) as city,
           nullif(upper(left(replace(p.postal_code, ' ', ''), 3)), '') as postal_area
    from (select 1) one
    left join public.intakes i on i.id = p_intake_id
    left join public.profiles p on p.id = p_customer_id),
  near as (  -- the city's verified workshops first (as find_workshops filters), then their cards
    select c.*, (c.postal_area is not distinct from h.postal_area and h.postal_area is not null) as same_area
    from here h
    join public.organizations o on o.status = 'verified' and lower(btrim(o.city)) = h.city
    cross join lateral private.workshop_cards(o.id) c
    order by same_area desc, c.rating desc nulls last, c.name, c.id
    limit greatest(p_limit, 0))
  select coalesce(jsonb_agg(jsonb_build_object(
           'workshop_id', n.id, 'name', n.name, 'city', n.city, 'postal_area', n.postal_area,
           'services', to_jsonb(n.services), 'rating', n.rating, 'rating_count', n.rating_count,
           'photo_url', n.photo_url, 'same_postal_area', n.same_area)
         order by n.same_area desc, n.rating desc nulls last, n.name, n.id), '[]')
  from near n
$$;
revoke execute on function private.recommendations_nearby_workshops(uuid, uuid, int) from public;
grant execute on function private.recommendations_nearby_workshops(uuid, uuid, int) to service_role;

-- Evaluates the active rules of a session's event (session_delivered, summary_submitted) and makes
-- each matching rule's offer once per (session, rule): a rule already applied is skipped, and a
-- concurrent evaluation of the same session inserts nothing twice (the unique key, on conflict do
-- nothing). The conditions read the session and its latest submitted summary; the price is the
-- plan's catalog price now (an inactive plan makes no offer).
create or replace function private.recommendations_evaluate(p_session_id uuid, p_event text) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_s public.sessions;
  v_sum public.session_summaries;
  v_ran_to_cap boolean;
  v_rule public.recommendation_rules;
  v_plan public.service_plans;
  v_data jsonb;
  v_workshops jsonb;
  v_id uuid;
begin
  if p_event is null or p_event not in ('session_delivered', 'summary_submitted') then
    perform private.raise_error('invalid_input', 'p_event is session_delivered or summary_submitted');
  end if;
  select * into v_s from public.sessions where id = p_session_id;
  if not found or v_s.status <> 'completed' then
    return;
  end if;
  select * into v_sum from public.session_summaries ss
  where ss.session_id = v_s.id and ss.status = 'submitted'
  order by ss.version desc limit 1;
  -- ran to its cap: it used every minute it was allowed (planned + granted extensions), or the time
  -- cap ended it (rooms/timers.sql, end_overdue_sessions)
  v_ran_to_cap := v_s.duration_type = 'micro'
                  and (coalesce(v_s.duration_minutes, 0) >= v_s.planned_minutes + v_s.extension_minutes
                       or v_s.cancel_reason = 'time cap reached');

  for v_rule in
    select r.* from public.recommendation_rules r
    where r.active and r.event = p_event
      and (not r.delivered_only or v_s.delivery = 'delivered')
      and (r.session_types is null or v_s.session_type = any (r.session_types))
      and (r.duration_types is null or v_s.duration_type = any (r.duration_types))
      and (r.urgencies is null or coalesce(v_sum.urgency = any (r.urgencies), false))
      and (not r.requires_parts or coalesce(jsonb_array_length(v_sum.parts) > 0, false))
      and (not r.requires_ran_to_cap or v_ran_to_cap)
      and not exists (select 1 from public.recommendations x where x.session_id = v_s.id and x.rule_code = r.code)
    order by r.priority, r.code
  loop
    v_plan := null;
    if v_rule.plan_code is not null then
      select * into v_plan from public.service_plans p where p.code = v_rule.plan_code and p.active;
      if not found then
        continue;
      end if;
    end if;
    v_data := jsonb_build_object('event', p_event);
    if v_sum.id is not null and (v_rule.urgencies is not null or v_rule.requires_parts) then
      v_data := v_data || jsonb_build_object('summary_id', v_sum.id, 'summary_version', v_sum.version,
                                             'urgency', v_sum.urgency);
    end if;
    if v_rule.requires_parts then
      v_data := v_data || jsonb_build_object(
        'parts', v_sum.parts,
        'estimated_total_cents', (select sum((p ->> 'estimated_cost_cents')::bigint)
                                  from jsonb_array_elements(v_sum.parts) p
                                  where jsonb_typeof(p -> 'estimated_cost_cents') = 'number'));
    end if;
    if v_rule.requires_ran_to_cap then
      v_data := v_data || jsonb_build_object('minutes_used', v_s.duration_minutes,
                                             'minutes_allowed', v_s.planned_minutes + v_s.extension_minutes);
    end if;
    if v_rule.lists_workshops then
      v_workshops := private.recommendations_nearby_workshops(v_s.customer_id, v_s.intake_id,
                                                              private.setting_int('recommendations.max_workshops'));
      if jsonb_array_length(v_workshops) = 0 then
        continue;  -- nothing near to recommend; a later evaluation may find one
      end if;
      v_data := v_data || jsonb_build_object('workshops', v_workshops);
    end if;

    v_id := null;
    insert into public.recommendations (customer_id, session_id, rule_code, kind, title, description, price_cents,
                                        currency, plan_code, deep_link, data, expires_at)
    values (v_s.customer_id, v_s.id, v_rule.code, v_rule.kind, v_rule.title, v_rule.description, v_plan.price_cents,
            v_plan.currency, v_plan.code, replace(v_rule.deep_link_template, '{session_id}', v_s.id::text), v_data,
            now() + private.setting_interval('recommendations.ttl'))
    on conflict (session_id, rule_code) do nothing
    returning id into v_id;
    if v_id is not null then
      perform realtime.send(
        jsonb_build_object('recommendation_id', v_id, 'session_id', v_s.id, 'kind', v_rule.kind,
                           'title', v_rule.title),
        'recommendation', 'session:' || v_s.id::text, true);
    end if;
  end loop;
end
$$;
revoke execute on function private.recommendations_evaluate(uuid, text) from public;
grant execute on function private.recommendations_evaluate(uuid, text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Shown and clicked (the customer's client)
-- ---------------------------------------------------------------------------------------------
create or replace function private.recommendation_json(p_r public.recommendations) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object(
    'recommendation_id', p_r.id, 'session_id', p_r.session_id, 'kind', p_r.kind, 'title', p_r.title,
    'description', p_r.description, 'price_cents', p_r.price_cents, 'currency', p_r.currency,
    'plan_code', p_r.plan_code, 'deep_link', p_r.deep_link, 'data', p_r.data, 'status', p_r.status,
    'created_at', p_r.created_at, 'expires_at', p_r.expires_at, 'shown_at', p_r.shown_at,
    'clicked_at', p_r.clicked_at, 'purchased_at', p_r.purchased_at)
$$;
revoke execute on function private.recommendation_json(public.recommendations) from public;
grant execute on function private.recommendation_json(public.recommendations) to service_role;

-- Records that the customer's client showed (p_click false) or opened (p_click true) one of its
-- recommendations. Only its own (another's, or one that does not exist: not_found); the first time
-- is kept, so a repeated call changes nothing and records nothing; a click implies it was shown.
-- An expired offer is not shown or opened for the first time (recommendation_expired).
create or replace function private.recommendation_touch(p_uid uuid, p_id uuid, p_click boolean) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_r public.recommendations;
  v_intake uuid;
  v_now timestamptz := now();
begin
  select * into v_r from public.recommendations r where r.id = p_id and r.customer_id = p_uid for update;
  if not found then
    perform private.raise_error('not_found', 'no such recommendation of yours');
  end if;
  if (v_r.shown_at is null or (p_click and v_r.clicked_at is null)) and v_r.expires_at <= v_now then
    perform private.raise_error('recommendation_expired', format('the recommendation expired at %s', v_r.expires_at));
  end if;
  select s.intake_id into v_intake from public.sessions s where s.id = v_r.session_id;
  if v_r.shown_at is null then
    update public.recommendations
    set shown_at = v_now, status = case when status = 'new' then 'shown' else status end
    where id = v_r.id returning * into v_r;
    perform private.crm_record(v_r.customer_id, 'recommendation_shown', v_now, v_intake, v_r.session_id, v_r.id,
                               jsonb_build_object('kind', v_r.kind, 'rule_code', v_r.rule_code));
  end if;
  if p_click and v_r.clicked_at is null then
    update public.recommendations
    set clicked_at = v_now, status = case when status in ('new', 'shown') then 'clicked' else status end
    where id = v_r.id returning * into v_r;
    perform private.crm_record(v_r.customer_id, 'recommendation_clicked', v_now, v_intake, v_r.session_id, v_r.id,
                               jsonb_build_object('kind', v_r.kind, 'rule_code', v_r.rule_code));
  end if;
  return private.recommendation_json(v_r);
end
$$;
revoke execute on function private.recommendation_touch(uuid, uuid, boolean) from public;
grant execute on function private.recommendation_touch(uuid, uuid, boolean) to service_role;

create or replace function public.recommendation_shown(p_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_id', p_id);
  return private.recommendation_touch(v_uid, p_id, false);
end
$$;
revoke execute on function public.recommendation_shown(uuid) from public, anon;
grant execute on function public.recommendation_shown(uuid) to authenticated, service_role;

create or replace function public.recommendation_clicked(p_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := private.require_user();
begin
  perform private.require_arg('p_id', p_id);
  return private.recommendation_touch(v_uid, p_id, true);
end
$$;
revoke execute on function public.recommendation_clicked(uuid) from public, anon;
grant execute on function public.recommendation_clicked(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Purchases
-- ---------------------------------------------------------------------------------------------
-- Marks the newest matching recommendation of the customer purchased by p_subject_id (a booking, a
-- follow-up, an appointment): the newest clicked one, else the newest shown one, of the given kind
-- (null: any), session (null: any), plan (null: any) and listed workshop (null: any), shown no
-- more than recommendations.attribution_window before now. Never one that was not shown (a purchase
-- made before the customer saw the offer is not its effect), never one bought already, and one
-- subject buys at most one offer of a kind. Records recommendation_purchased. Returns the
-- recommendation's id, or null when none matches.
create or replace function private.recommendations_purchase(
  p_customer_id uuid, p_kind text, p_session_id uuid, p_plan_code text, p_workshop_id uuid, p_subject_id uuid,
  p_data jsonb default '{}'
) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_now timestamptz := now();
  v_window interval := private.setting_interval('recommendations.attribution_window');
  v_r public.recommendations;
begin
  if p_customer_id is null or p_subject_id is null then
    return null;
  end if;
  select * into v_r from public.recommendations r
  where r.customer_id = p_customer_id and r.status in ('shown', 'clicked')
    and r.shown_at <= v_now and r.shown_at + v_window >= v_now
    and (p_kind is null or r.kind = p_kind)
    and (p_session_id is null or r.session_id = p_session_id)
    and (p_plan_code is null or r.plan_code = p_plan_code)
    and (p_workshop_id is null
         or coalesce(r.data -> 'workshops', '[]') @> jsonb_build_array(jsonb_build_object('workshop_id', p_workshop_id)))
    and not exists (select 1 from public.recommendations y
                    where y.purchase_subject_id = p_subject_id and y.kind = r.kind)
  order by (r.clicked_at is not null) desc, coalesce(r.clicked_at, r.shown_at) desc, r.id
  limit 1
  for update;
  if not found or v_r.status not in ('shown', 'clicked') then
    return null;
  end if;
  update public.recommendations
  set status = 'purchased', purchased_at = v_now, purchase_subject_id = p_subject_id
  where id = v_r.id returning * into v_r;
  perform private.crm_record(v_r.customer_id, 'recommendation_purchased', v_now,
                             (select s.intake_id from public.sessions s where s.id = v_r.session_id), v_r.session_id,
                             v_r.id, jsonb_build_object('kind', v_r.kind, 'rule_code', v_r.rule_code,
                                                        'plan_code', v_r.plan_code, 'purchase_subject_id', p_subject_id)
                                     || coalesce(p_data, '{}'));
  return v_r.id;
end
$$;
revoke execute on function private.recommendations_purchase(uuid, text, uuid, text, uuid, uuid, jsonb) from public;
grant execute on function private.recommendations_purchase(uuid, text, uuid, text, uuid, uuid, jsonb) to service_role;

-- For the purchases that are not a plan booking, called by the part that makes them: a follow-up
-- asked on a session (kind follow_up, the follow-up as subject).
create or replace function private.recommendations_mark_purchased(
  p_customer_id uuid, p_kind text, p_session_id uuid, p_subject_id uuid
) returns uuid
language plpgsql security definer set search_path = ''
as $$
begin
  if p_kind is null or p_kind not in ('follow_up', 'maintenance_plan', 'premium_upgrade', 'workshop_visit') then
    perform private.raise_error('invalid_input', 'p_kind is follow_up, maintenance_plan, premium_upgrade or workshop_visit');
  end if;
  return private.recommendations_purchase(p_customer_id, p_kind, p_session_id, null, null, p_subject_id, '{}');
end
$$;
revoke execute on function private.recommendations_mark_purchased(uuid, text, uuid, uuid) from public;
grant execute on function private.recommendations_mark_purchased(uuid, text, uuid, uuid) to service_role;

-- A booking of the customer paid (by card through the Stripe webhook, or with credit: every path
-- that makes a booking `paid`, payments/checkout.sql and payments/stripe_events.sql) buys the
-- newest matching recommendation of its plan. A trigger: the purchase is a consequence of the
-- status, whichever path paid it.
create or replace function private.tg_bookings__recommendation_purchase() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.status = 'paid' and old.status is distinct from 'paid' and new.plan_code is not null then
    perform private.recommendations_purchase(new.customer_id, null, null, new.plan_code, null, new.id,
                                             jsonb_build_object('booking_id', new.id, 'price_cents', new.price_cents,
                                                                'currency', new.currency, 'method', new.method));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_bookings__recommendation_purchase() from public;
drop trigger if exists _460_recommendation_purchase on public.bookings;
create trigger _460_recommendation_purchase after update of status on public.bookings
  for each row
  when (new.status = 'paid' and old.status is distinct from 'paid' and new.plan_code is not null)
  execute function private.tg_bookings__recommendation_purchase();

-- A workshop appointment the customer requests (workshops/appointments_rpc.sql) buys the newest
-- workshop-visit recommendation that listed that workshop; when it is requested from a diagnostic
-- session, it also buys that session's maintenance-plan recommendation (the work it planned).
create or replace function private.tg_workshop_appointments__recommendation_purchase() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform private.recommendations_purchase(new.customer_id, 'workshop_visit', null, null, new.workshop_id, new.id,
                                           jsonb_build_object('appointment_id', new.id, 'workshop_id', new.workshop_id));
  if new.diagnostic_session_id is not null then
    perform private.recommendations_purchase(new.customer_id, 'maintenance_plan', new.diagnostic_session_id, null, null,
                                             new.id, jsonb_build_object('appointment_id', new.id,
                                                                        'workshop_id', new.workshop_id));
  end if;
  return null;
end
$$;
revoke execute on function private.tg_workshop_appointments__recommendation_purchase() from public;
drop trigger if exists _460_recommendation_purchase on public.workshop_appointments;
create trigger _460_recommendation_purchase after insert on public.workshop_appointments
  for each row execute function private.tg_workshop_appointments__recommendation_purchase();
