-- A manual assignment is an offer, not an order: mechanics are contractors who may always decline.
-- An admin offers a request to one mechanic, who has it alone for matching.admin_offer_window (the
-- exclusive window of matching: broadcast_at), and accepts or declines it like any offer.
alter table public.session_requests
  add column offered_mechanic_id uuid references public.mechanics (id) on delete set null;
comment on column public.session_requests.offered_mechanic_id is
  'The mechanic an admin offered the request to; until broadcast_at only it may take it (it may decline).';
create index session_requests_offered_mechanic_id_idx on public.session_requests (offered_mechanic_id)
  where offered_mechanic_id is not null;  -- FK

insert into private.settings (key, value, value_type, description) values
  ('matching.admin_offer_window', '"10 minutes"', 'interval',
   'an admin''s offer of a request to one mechanic is that mechanic''s alone this long, then the request opens to everyone');

-- During an exclusive window (the customer's preferred mechanic, or the mechanic an admin offered it
-- to) the request is visible to that mechanic only.
drop policy select_own_open_or_admin on public.session_requests;
create policy select_own_open_or_admin on public.session_requests for select to authenticated
  using (customer_id = (select auth.uid()) or mechanic_id = (select auth.uid())
         or (status in ('pending', 'unattended') and (select private.is_approved_mechanic())
             and (coalesce(offered_mechanic_id, preferred_mechanic_id) = (select auth.uid())
                  or broadcast_at <= (select now())))
         or (select private.is_admin()));

insert into private.email_templates (name, has_html, transactional, description) values
  ('request_offered', true, true, 'an admin offered the request to a mechanic, who may accept or decline it');

insert into private.error_codes (sqlstate, name, http_status, description) values
  ('AD275', 'mechanic_unavailable', 409,
   'The mechanic cannot take this request now (not approved or suspended, busy, off shift, its micro rules or its schedule); the message names why.'),
  ('AD276', 'preferred_mechanic_not_eligible', 409,
   'The preferred mechanic may not take this kind of session (participation mode, shift, daily micro cap, workshop); the message names why.');
