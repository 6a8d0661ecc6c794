-- rank_total_in_one_pass: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql matching/ranking.sql sha256=1875c29f48fc94d3bdf77b4159f35b66dba4caf744d7f4979be5439690083f13
-- Matching: ranking mechanics for a request, with explained scores.

-- ---------------------------------------------------------------------------------------------
-- Ranking (points per reason, read from the matching.weights setting). The rating points come from
-- the Bayesian rating_score (reviews/reputation.sql), so a handful of reviews cannot outrank hundreds;
-- experience for ties is customers_served, so one customer's many sessions count once. Eligible = approved, may accept, not busy,
-- not the customer, did not decline this request, passes the eligibility hook, and for a
-- specialist request a specialist of the vehicle's make. Declines and acceptance rate never
-- lower a score.
-- ---------------------------------------------------------------------------------------------
create or replace function private.rank_mechanics(
  p_request_id uuid,
  p_limit int default null,
  p_now timestamptz default now(),
  p_exclude_offered boolean default false
) returns table (mechanic_id uuid, score int, reasons jsonb, rank int)
language plpgsql stable security definer set search_path = '' set jit = off  -- compiling costs more than it saves here
as $$
declare
  v_w jsonb := private.setting('matching.weights');
  w_online_now int := (v_w ->> 'online_now')::int;
  w_seen_30m int := (v_w ->> 'seen_30m')::int;
  w_seen_1h int := (v_w ->> 'seen_1h')::int;
  w_seen_today int := (v_w ->> 'seen_today')::int;
  w_keyword int := (v_w ->> 'keyword')::int;
  w_brand_specialist int := (v_w ->> 'brand_specialist')::int;
  w_experience_10 int := (v_w ->> 'experience_10')::int;
  w_experience_5 int := (v_w ->> 'experience_5')::int;
  w_same_fsa int := (v_w ->> 'same_fsa')::int;
  w_same_city int := (v_w ->> 'same_city')::int;
  w_rating_5 int := (v_w ->> 'rating_5')::int;
  w_rating_45 int := (v_w ->> 'rating_45')::int;
  w_rating_40 int := (v_w ->> 'rating_40')::int;
  w_rating_35 int := (v_w ->> 'rating_35')::int;
  v_window interval := private.setting_interval('presence.online_window');
  v_limit int := coalesce(p_limit, private.setting_int('matching.top_n'));
  -- points by level (level 0 earns nothing): presence 0..4, experience 0..2, location 0..2, rating 0..4
  v_presence_points int[] := array[0, w_seen_today, w_seen_1h, w_seen_30m, w_online_now];
  v_experience_points int[] := array[0, w_experience_5, w_experience_10];
  v_location_points int[] := array[0, w_same_city, w_same_fsa];
  v_rating_points int[] := array[0, w_rating_35, w_rating_40, w_rating_45, w_rating_5];
  -- presence thresholds as values: `timestamptz - interval` is not folded by the planner, so written
  -- in the query it would be computed again for every mechanic
  v_online_after timestamptz := p_now - v_window;
  v_seen_30m_after timestamptz := p_now - interval '30 minutes';
  v_seen_1h_after timestamptz := p_now - interval '1 hour';
  v_seen_26h_after timestamptz := p_now - interval '26 hours';  -- no local day starts earlier
  v_req public.session_requests;
  v_city text;
  v_fsa text;
  v_make text;
  v_make_key text[];
  v_bits bit(256);
begin
  if v_limit is null or v_limit < 1 or v_limit > 1000 then
    perform private.raise_error('invalid_input', 'the limit must be between 1 and 1000');
  end if;
  select * into v_req from public.session_requests where id = p_request_id;
  if not found then
    perform private.raise_error('not_found', 'no such request');
  end if;
  v_bits := v_req.keyword_bits;
  v_make := lower(v_req.vehicle_make);
  v_make_key := array[coalesce(v_make, '')];  -- '' is never a brand key
  select lower(btrim(coalesce(p.city, i.city))), nullif(upper(left(replace(p.postal_code, ' ', ''), 3)), '')
  into v_city, v_fsa
  from public.sessions s
  left join public.profiles p on p.id = s.customer_id
  left join public.intakes i on i.id = s.intake_id
  where s.id = v_req.session_id;

  -- `levels` states each factor of a mechanic's score once. It is inlined twice: into the scan over
  -- every mechanic, which computes only the total (each factor once per mechanic), and into the
  -- lookup of the rows returned, which spells out their reasons. Exclusions (busy, declined, the
  -- eligibility hook) are hashed sets; keyword hits are one AND and a bit count.
  return query
  with levels as not materialized (
    select m.id, m.status, m.can_accept_sessions, m.rating_score, m.rating_count, m.customers_served,
           m.years_experience,
           case when m.is_available and m.last_seen_at >= v_online_after then 4
                when m.last_seen_at >= v_seen_30m_after then 3
                when m.last_seen_at >= v_seen_1h_after then 2
                when m.last_seen_at >= v_seen_26h_after
                     and m.last_seen_at >= (date_trunc('day', p_now at time zone m.timezone) at time zone m.timezone)
                  then 1
                else 0 end as presence_level,
           bit_count(m.keyword_bits & v_bits)::int as keyword_hits,
           (m.is_brand_specialist and m.brand_keys @> v_make_key) as brand_match,
           case when m.years_experience >= 10 then 2 when m.years_experience >= 5 then 1 else 0 end as experience_level,
           case when m.postal_area = v_fsa then 2 when m.city_key = v_city then 1 else 0 end as location_level,
           case when m.rating_score >= 4.75 then 4 when m.rating_score >= 4.5 then 3 when m.rating_score >= 4.0 then 2
                when m.rating_score >= 3.5 then 1 else 0 end as rating_level
    from public.mechanics m
  ),
  busy as (
    select c.mechanic_id from public.mechanic_commitments c where c.status = 'in_progress'
  ),
  asked as (
    select o.mechanic_id from public.session_offers o
    where o.request_id = v_req.id and o.mechanic_id is not null and (o.status = 'declined' or p_exclude_offered)
  ),
  excluded as (
    select x from private.eligibility_exclusions(v_req.id, p_now) x where x is not null
  ),
  top as (
    select l.id, l.rating_score, l.customers_served, l.years_experience,
           v_presence_points[l.presence_level + 1] + l.keyword_hits * w_keyword
           + case when l.brand_match then w_brand_specialist else 0 end + v_experience_points[l.experience_level + 1]
           + v_location_points[l.location_level + 1] + v_rating_points[l.rating_level + 1] as total
    from levels l
    where l.status = 'approved' and l.can_accept_sessions and l.id <> v_req.customer_id
      and l.id not in (select b.mechanic_id from busy b)
      and l.id not in (select a.mechanic_id from asked a)
      and l.id not in (select e.x from excluded e)
      and (not v_req.specialist or l.brand_match)
    order by total desc, l.rating_score desc, l.customers_served desc, l.years_experience desc, l.id
    limit v_limit
  )
  select t.id, t.total,
         (select coalesce(jsonb_agg(jsonb_build_object('reason', r.reason, 'points', r.points) order by r.ord), '[]')
          from (values
            (1, case l.presence_level when 4 then 'online_now' when 3 then 'seen_within_30_minutes'
                                      when 2 then 'seen_within_1_hour' when 1 then 'seen_today' end,
             v_presence_points[l.presence_level + 1]),
            (2, 'keywords_matched:' || l.keyword_hits, l.keyword_hits * w_keyword),
            (3, 'brand_specialist:' || coalesce(v_make, ''), case when l.brand_match then w_brand_specialist else 0 end),
            (4, 'experience_years:' || l.years_experience, v_experience_points[l.experience_level + 1]),
            (5, case l.location_level when 2 then 'same_postal_area' else 'same_city' end,
             v_location_points[l.location_level + 1]),
            (6, case when l.rating_count > 0 then 'rating:' else 'rating_prior:' end || to_char(l.rating_score, 'FM0.00'),
             v_rating_points[l.rating_level + 1])) as r(ord, reason, points)
          where r.points > 0),
         (row_number() over (order by t.total desc, t.rating_score desc, t.customers_served desc,
                                      t.years_experience desc, t.id))::int
  from top t
  join levels l on l.id = t.id
  order by 4;
end
$$;
revoke execute on function private.rank_mechanics(uuid, int, timestamptz, boolean) from public;
grant execute on function private.rank_mechanics(uuid, int, timestamptz, boolean) to service_role;

-- Admins see the ranking of any request, with its reasons.
create or replace function public.admin_rank_request(p_request_id uuid, p_limit int default 10)
returns table (mechanic_id uuid, display_name text, score int, reasons jsonb, rank int)
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_admin();
  perform private.require_arg('p_request_id', p_request_id);
  return query
  select k.mechanic_id, m.display_name, k.score, k.reasons, k.rank
  from private.rank_mechanics(p_request_id, p_limit, now()) k
  join public.mechanics m on m.id = k.mechanic_id
  order by k.rank;
end
$$;
revoke execute on function public.admin_rank_request(uuid, int) from public, anon;
grant execute on function public.admin_rank_request(uuid, int) to authenticated, service_role;
-- <<< functions_sql matching/ranking.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=f3423df9a7c70656d684d4eacda964fa8cd797385cbe652f801bc08abd55edc0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=c6580df89ca816d46c7baa4b713d76b69f9ba5f6479421e7965160f8db061495
-- functions_sql-manifest core/errors.sql sha256=3162f074770469a2c8f8cc6e582405853f74e510e71a3961234876f8a544d9d2
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=5f3ed2f9a8e654d5ca93bbf7edf248cd364e4ce5a123279775841ea40f774886
-- functions_sql-manifest core/rpc.sql sha256=b7d028c2ec383050171607f4dbec654b0803f556c52ca56f8e0050afb390ee47
-- functions_sql-manifest core/sessions.sql sha256=dc306360e4147de60a109be0b93dc249b6c67ff6abd0771b50bbd0a76e6ced5d
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=05daf7ab50a29daff4b0e07fd41fbe145d0a6eab20fefab4a8108bb176a8754a
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=b143b84726f6a930f3e53cd3b60f284b256b874ae0607350a333069d929dccb4
-- functions_sql-manifest jobs/nudges.sql sha256=133086b270ff41327c4314b308a0dd05c773f505a6d22e28d7d5b769bc5b18f0
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/retention.sql sha256=69a597011866200c3f8c5ccc485b31b206c94b0b60023b00f91b76ecd20ee960
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=0f29827750fe354e4d3aafa4224e183a932ab76143e021603707362417a70674
-- functions_sql-manifest jobs/sweep_requests.sql sha256=a23a55209d25dfa04d0381b4a044ef8988c369bfd5d5f75342eeb081ffa24fc4
-- functions_sql-manifest journey/crm.sql sha256=ad947defb07bf2514d234e48196f06c8003de9198be44edafd931324da9eed77
-- functions_sql-manifest journey/email_events.sql sha256=b51ce4a220f681ed20c686fa4c446662e0c2a5934a48c89aa63291f5e0abf175
-- functions_sql-manifest journey/follow_ups.sql sha256=ffeac60955f0629f182850ca5860cbfb58d3f8e34fa43ddd1e3711f0e97ba7b7
-- functions_sql-manifest journey/funnel.sql sha256=5b3c8672caaabd8ac657b194f79cd4a298aa5821d8c2638ffa1e1bc7f66251cf
-- functions_sql-manifest journey/hooks.sql sha256=99325e75fecf99286655b1520e96ed28be92671201653795c6fc543383152cad
-- functions_sql-manifest journey/media.sql sha256=51f76abb9d8ccc2bdfa3bfa5a51394c1dbeaa570e90441c6ae07cb52faed8074
-- functions_sql-manifest journey/messages.sql sha256=9c982cb359e36289c3719de9113c0f35712d88bc0c0de88750a250951602c698
-- functions_sql-manifest journey/recommendations.sql sha256=a036ac293c55e400a131907958b2b0f47f31e1f70b026e95f911350f3d9ffbcb
-- functions_sql-manifest journey/summaries.sql sha256=8f846c9f411f14f5c050216d66b7ebf0e543e4d692c9212e5fed8a2504988aca
-- functions_sql-manifest matching/eligibility.sql sha256=8684a176b58836a1626509e024956f9f7b77ef548d3d49f111ec8e3128c8e6f9
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=1e2680106a7b43696e9717d5765287f32abdd8d775e7a063ce52bc0255c5f5a8
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=671eb0ca5ff2eabc4553ed517c548792601d1e6f93f40009f45c7a469590d434
-- functions_sql-manifest matching/ranking.sql sha256=1875c29f48fc94d3bdf77b4159f35b66dba4caf744d7f4979be5439690083f13
-- functions_sql-manifest matching/routing.sql sha256=58ba5a184a80e0036de26d1265fd8e96cf3f2556ad35f0ddc3fd7e0bc5d0cb9d
-- functions_sql-manifest micro/caps.sql sha256=e9fc3ffe6455befad8600e9ed215dc19a7aa536239b9edbf1a6e71318fd1197f
-- functions_sql-manifest micro/clock.sql sha256=32f42427523e5c8be8e9fef6f730b3c8c24fa1054af8a6d2c488b821b12782ca
-- functions_sql-manifest micro/dashboards.sql sha256=1d84b7005d832d8d31bd90af0f51609bb0835cad1c1adb80b551238a8e1d3fee
-- functions_sql-manifest micro/settings.sql sha256=356a78efd80f0d129aee86690203858fd1eb41951ee61f292cd27c6c455a53b6
-- functions_sql-manifest operations/audit.sql sha256=36151fb12fbe00fc18cfa4ab2b483a8124de04a2f0ce94320f000bd8f58afac9
-- functions_sql-manifest operations/audit_read.sql sha256=79a5ce8d7aac6cfd8492db628d05b2361ead8b3e40bbc0e4fc97931e2eb18944
-- functions_sql-manifest operations/intakes.sql sha256=5a26a15d43af2b32955d467c57c0081cd0717e4b954c731b12a062eb09eb5f4f
-- functions_sql-manifest operations/overview.sql sha256=3df15bfd5fd6d5c44b2644335d8fef6a5455f270c8951e97631c500514d4f63f
-- functions_sql-manifest operations/scheduling_stats.sql sha256=b772a3a3f650581b86383104c41fc58c121d5fd9866799f5a7887998133e79b3
-- functions_sql-manifest operations/suspension.sql sha256=d7cb210ae69fdcd3ce3869fa5704005f1d589dc3287654f4683f81db76fa9d68
-- functions_sql-manifest operations/vetting.sql sha256=526d634854d6c06516a276b806ddbbb6c836d4ad0eb1126f8c2c47ac392e1022
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=8836fa4de643e4f763bd2c65db490614b4b4ea1d5b1679b6375c0206c2c583d7
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=6c2bba7a49c6003ae582231db463a52ae56cde445b3c027d38edb86ffe550532
-- functions_sql-manifest payments/refunds.sql sha256=cae62e292095da8bea25a5efa26fee737f917ddad64674940e764dbdd029a64f
-- functions_sql-manifest payments/settlement.sql sha256=61eab335038603d3c5ca74c4d5482699ff096571f76b57d4ec1be1fe4f84f015
-- functions_sql-manifest payments/stripe_events.sql sha256=4ce61ce9cfefa4baac3f3e9bcea7fde138656823399523df35da2611f8a94edb
-- functions_sql-manifest payments/stripe_worker.sql sha256=7a1794a993228bf0823b97a16ae0d8c7460154642cef84408597c4004e8603ae
-- functions_sql-manifest privacy/erasure.sql sha256=a7b8ff17f6a6318fb461c687b5e31c848282093830f02abdce487adfd26eab91
-- functions_sql-manifest privacy/export.sql sha256=734a19b7fdd193141bf0c6a577100c2acb4735b81f9f037d97b406d6976409c8
-- functions_sql-manifest reviews/prompts.sql sha256=e3c52363528fd28863d3b82dba2a77c539334fee239d433a2c08860bc8182791
-- functions_sql-manifest reviews/public_view.sql sha256=3163f057402af1cc7203ef9ca04b483045d3e1e48322d23e5b7deb6c30c03414
-- functions_sql-manifest reviews/reputation.sql sha256=94a660258d69a38250c8f5efcd36415d5d0e8347bec1a6c772634db1fe37054a
-- functions_sql-manifest reviews/reviews.sql sha256=acb29b4bdf4a2cccae60ad261d0aebd3b2c0ec8dd85824ac9060ecc5d46cad36
-- functions_sql-manifest rooms/access.sql sha256=1b63c186ad327a61c6f7c2eea4436148cd145987bec6902fa111b45b7639ae8f
-- functions_sql-manifest rooms/extensions.sql sha256=ecdb7236fec9d57e29a438797584ac830db6c0cf66795c8b03df65da3635e495
-- functions_sql-manifest rooms/livekit_events.sql sha256=cc2b9fea2937b577fdb85e91e226156f3d7dd339706f5a61c3892c359d9a4e4a
-- functions_sql-manifest rooms/timers.sql sha256=5f5346a4e0cc3d12ffb926f1f08893bc970a8444b177207bc3aa1f6f42940896
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=fa16f1151e8b6ae87c87d4803aa9ca30ae76b2fc0e9eae062b18db3b80635acd
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=288b0c42a20fcde3021153b8ca87419587435eb7d56dce47e8eb7b5b9b78cbed
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=9e87d0da79c6f8a24def78eb05896b5b82b7818be3e4e503ddd3e3c46cebae77
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=f8aee44aa98e1225386f30125690e6bad521a719e70e2eb66eb7b48647c2cb6d
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=34630099e08c42e19a6cb1a2684502f9298a5abc0f9895be56e2cab6eecd713a
-- functions_sql-manifest scheduling/reminders.sql sha256=a6dc4c21da22223a56fdc58f4507ed12770b057dcaf5543048bbbd5511e850ee
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
-- functions_sql-manifest trust/contact.sql sha256=b7992cc67d68723ea04b1986c3ee163f46210619cb7fbc5fd973b0b0f80f323c
-- functions_sql-manifest trust/delivery.sql sha256=13cf9a7795fabfc1598e9b01f993e1352becf53f8f60d52481d37361cbf191ad
-- functions_sql-manifest trust/limits.sql sha256=fad6fd79cdb0a0347458353a0df26e95f8dabac768a6b44c7a28160c32ab47fe
-- functions_sql-manifest trust/pricing.sql sha256=3075961d25ecc4ccd99e6bbf25ad3012a836d5697935c502ed26095ec7359950
-- functions_sql-manifest trust/rate_limit.sql sha256=dc51a19ec7cff8e1b01d341ec68e6f3c11de7c17d23ef7185b0b0c79850bcb2c
-- functions_sql-manifest trust/standing.sql sha256=48f60135d88420982e9a0d1f847a97ce41ab3b62f9105b935f35b16f4f5c8a07
-- functions_sql-manifest trust/waiver.sql sha256=e55e17a34963e554f36bec304c2212fe7765268192081a2d2502a28c9ca38b41
-- functions_sql-manifest workshops/appointments.sql sha256=5f6530bed3befb05a76302182e756dc65303c345cb474afd3fe6db59db4b7273
-- functions_sql-manifest workshops/appointments_notify.sql sha256=50c518c61b4fc52577450080ed5407dd64a20d205da2f504932b11d47cc228cb
-- functions_sql-manifest workshops/appointments_rpc.sql sha256=f88d70f5575415327a86ef0017bceacc6b7454be95e3983d1e847d0552acaee6
-- functions_sql-manifest workshops/directory.sql sha256=b4ca0b3283f5e9f382ac3aa61acf49ff546d43813a20baccbd4944bec3c7f93b
-- functions_sql-manifest workshops/dispatch.sql sha256=db61193624f16d01338b25aacc63226c1e4a0a26de073f1545f5b6f4ae96b2a4
-- functions_sql-manifest workshops/hooks.sql sha256=99e01f958c1f3ab8d67144edc06dd9df28f576f36731ea05f68d45e364ae57be
-- functions_sql-manifest workshops/onboarding.sql sha256=1a65ec1d4b5f8f731fdf657e65ae84c0bc504c6a2c55ca6983e9e267a03dbe0d
-- functions_sql-manifest workshops/referral.sql sha256=6bada6ae6e424f43ccae0e5cfeb7f479c054fe63e09c36d0d9a5fa91026b5f75
-- functions_sql-manifest workshops/roster.sql sha256=54b139b2071afad60fa701efeddf2dba296ddb2162f689aba18640a68036f187
-- functions_sql-manifest workshops/specialists.sql sha256=8005a20dd10a143a3921224766e65c28f4c8d57d9e3402851b96556e60b9c291
