-- Matching and routing: presence window, scoring weights (seed 004), the automotive vocabulary for
-- keyword extraction, when a request opens to every mechanic (a preferred mechanic's exclusive
-- window, seed 001), when it is next due for routing, and presence on Realtime.

-- ---------------------------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------------------------
insert into private.settings (key, value, description) values
  ('presence.online_window', '"2 minutes"', 'a mechanic is online while available and its last heartbeat is this recent'),
  ('matching.weights', '{
     "online_now": 50, "seen_30m": 30, "seen_1h": 20, "seen_today": 10,
     "keyword": 15, "brand_specialist": 30, "experience_10": 20, "experience_5": 10,
     "same_fsa": 10, "same_city": 5,
     "rating_5": 20, "rating_45": 15, "rating_40": 10, "rating_35": 5}',
   'scoring weights (seed 004 §1.2): points per reason'),
  ('matching.top_n', '10', 'how many ranked mechanics a ranking returns by default'),
  ('matching.targeted_count', '3', 'targeted offers kept open at once after the preferred window'),
  ('matching.offer_ttl', '"2 minutes"', 'a targeted offer that is not answered expires and goes to the next mechanic');

-- ---------------------------------------------------------------------------------------------
-- Automotive vocabulary: concern text → keywords compared with mechanics' service keywords
-- ---------------------------------------------------------------------------------------------
create table public.automotive_keywords (
  keyword text primary key constraint automotive_keywords_keyword_format check (keyword ~ '^[a-z0-9 /-]{2,40}$'),
  category text not null,
  -- lowercase patterns (PostgreSQL regular expressions) that mean this keyword in a concern
  patterns text[] not null constraint automotive_keywords_patterns_nonempty check (cardinality(patterns) > 0)
);
comment on table public.automotive_keywords is
  'The vocabulary matching extracts from a concern; a mechanic''s service_keywords use the same words.';

insert into public.automotive_keywords (keyword, category, patterns) values
  ('brakes', 'brakes', array['\mbrak(e|es|ing)\M', '\mrotors?\M', '\mcalipers?\M', '\mbrake pads?\M']),
  ('abs', 'brakes', array['\mabs\M', '\manti-?lock\M']),
  ('transmission', 'drivetrain', array['\mtransmissions?\M', '\mgearbox\M', '\mshift(ing|s)?\M', '\mgears?\M']),
  ('clutch', 'drivetrain', array['\mclutch\M']),
  ('cv joint', 'drivetrain', array['\mcv (joint|axle|boot)s?\M']),
  ('differential', 'drivetrain', array['\mdifferentials?\M']),
  ('battery', 'electrical', array['\mbatter(y|ies)\M', '\mwon''?t start\M', '\mjump ?start']),
  ('alternator', 'electrical', array['\malternators?\M', '\mcharging\M']),
  ('starter', 'electrical', array['\mstarter( motor)?\M', '\mclick(ing)? (sound|noise)?\s*when starting']),
  ('electrical', 'electrical', array['\melectric(al)?\M', '\mwiring\M', '\mfuses?\M', '\mshort circuit\M']),
  ('lights', 'electrical', array['\mheadlights?\M', '\mtail ?lights?\M', '\mbulbs?\M']),
  ('check engine', 'engine', array['\mcheck engine\M', '\mcel\M', '\mmil\M', '\mengine light\M']),
  ('obd', 'engine', array['\mobd-?(ii|2)?\M', '\mcodes?\M', '\m[pbcu][0-9]{4}\M']),
  ('engine', 'engine', array['\mengines?\M', '\mmotor\M']),
  ('misfire', 'engine', array['\mmisfir(e|es|ing)\M', '\mrough idle\M']),
  ('overheating', 'cooling', array['\moverheat(ing|s)?\M', '\mrunning hot\M', '\mtemperature gauge\M']),
  ('coolant', 'cooling', array['\mcoolant\M', '\mantifreeze\M', '\mradiator\M', '\mwater pump\M', '\mthermostat\M']),
  ('oil', 'engine', array['\moil (leak|change|pressure|light)\M', '\mleaking oil\M', '\mburning oil\M']),
  ('timing belt', 'engine', array['\mtiming (belt|chain)\M']),
  ('spark plugs', 'engine', array['\mspark ?plugs?\M', '\mignition coils?\M']),
  ('fuel', 'fuel', array['\mfuel (pump|injector|filter|system)s?\M', '\minjectors?\M', '\mgas mileage\M']),
  ('exhaust', 'exhaust', array['\mexhaust\M', '\mmuffler\M', '\mcatalytic\M', '\mcat converter\M']),
  ('emissions', 'exhaust', array['\memissions?\M', '\msmog\M', '\mo2 sensor\M', '\moxygen sensor\M']),
  ('suspension', 'suspension', array['\msuspension\M', '\mshocks?\M', '\mstruts?\M', '\mcontrol arms?\M', '\mbushings?\M']),
  ('steering', 'suspension', array['\msteering\M', '\mtie rods?\M', '\mpower steering\M', '\mpulls? to the (left|right)\M']),
  ('alignment', 'suspension', array['\malignment\M', '\muneven (tire )?wear\M']),
  ('tires', 'wheels', array['\mtires?\M', '\mtyres?\M', '\mflat\M', '\mtpms\M', '\mtire pressure\M']),
  ('wheel bearing', 'wheels', array['\mwheel bearings?\M', '\mhumming noise\M']),
  ('air conditioning', 'climate', array['\ma/?c\M', '\mair condition(ing|er)\M', '\mrefrigerant\M', '\mcompressor\M']),
  ('heating', 'climate', array['\mheat(er|ing)\M', '\mblower\M', '\mdefrost']),
  ('noise', 'symptom', array['\mnois(e|es|y)\M', '\msqueal(s|ing)?\M', '\mgrind(s|ing)?\M', '\mrattl(e|es|ing)\M', '\mknock(s|ing)?\M', '\mclunk(s|ing)?\M']),
  ('vibration', 'symptom', array['\mvibrat(e|es|ing|ion)\M', '\mshak(e|es|ing)\M', '\mwobbl(e|es|ing)\M']),
  ('leak', 'symptom', array['\mleak(s|ing)?\M', '\mdrip(s|ping)?\M', '\mpuddle\M']),
  ('smoke', 'symptom', array['\msmok(e|es|ing|y)\M']),
  ('hybrid', 'ev', array['\mhybrid\M']),
  ('ev', 'ev', array['\mev\M', '\melectric vehicle\M', '\mcharging port\M', '\mhigh voltage\M']),
  ('diesel', 'engine', array['\mdiesel\M', '\mdpf\M', '\mglow plugs?\M', '\mdef\M']),
  ('turbo', 'engine', array['\mturbo(charger)?\M', '\mboost\M']),
  ('pre-purchase inspection', 'inspection', array['\mpre-?purchase\M', '\mbuying a (used )?car\M', '\minspection\M']),
  ('maintenance', 'inspection', array['\mmaintenance\M', '\mservice interval\M', '\mtune-?up\M']),
  ('body', 'body', array['\mbody ?work\M', '\mdent\M', '\mrust\M', '\mpaint\M']),
  ('windows', 'body', array['\mwindows?\M', '\mwindshield\M', '\mwipers?\M', '\mdoor locks?\M']),
  ('infotainment', 'electrical', array['\minfotainment\M', '\mbluetooth\M', '\mradio\M', '\mscreen\M']),
  ('airbag', 'safety', array['\mairbags?\M', '\msrs\M']),
  ('keys', 'electrical', array['\mkey ?fob\M', '\mimmobili[sz]er\M', '\mkeys?\M']);

-- Each keyword's bit in keyword sets stored as bit(256): matching counts shared keywords with one
-- AND and a bit count instead of array operations per mechanic.
alter table public.automotive_keywords
  add column bit_position smallint generated by default as identity (minvalue 0 start 0)
    constraint automotive_keywords_bit_position_key unique
    constraint automotive_keywords_bit_position_range check (bit_position between 0 and 255);

alter table public.automotive_keywords enable row level security;
create policy select_all on public.automotive_keywords for select to anon, authenticated using (true);
grant select on public.automotive_keywords to anon, authenticated, service_role;
grant insert, update, delete on public.automotive_keywords to service_role;

-- Mechanics: the postal area (first three characters, e.g. a Canadian FSA) kept ready for scoring.
alter table public.mechanics
  add column postal_area text generated always as (nullif(upper(left(replace(postal_code, ' ', ''), 3)), '')) stored,
  add column city_key text generated always as (lower(btrim(city))) stored,
  -- lowercase brand names, kept by a trigger (an array cast is not immutable, so not generated)
  add column brand_keys text[] not null default '{}',
  -- service keywords as vocabulary bits (automotive_keywords.bit_position), kept by a trigger
  add column keyword_bits bit(256) not null default repeat('0', 256)::bit(256);
grant select (postal_area, city_key, brand_keys, keyword_bits) on public.mechanics to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Requests: when they open to every mechanic and when routing must look at them next
-- ---------------------------------------------------------------------------------------------
alter table public.session_requests
  add column broadcast_at timestamptz,
  add column next_route_at timestamptz,
  add column keywords text[] not null default '{}',
  add column keyword_bits bit(256) not null default repeat('0', 256)::bit(256);
comment on column public.session_requests.keywords is 'Vocabulary keywords found in the concern when it was filed.';
comment on column public.session_requests.broadcast_at is
  'When the request opens to every eligible mechanic: at creation, or after the preferred mechanic''s window.';
comment on column public.session_requests.next_route_at is
  'When routing must look at the request again (window end, an offer expiring); null when nothing is due.';
update public.session_requests set broadcast_at = created_at where broadcast_at is null;
create index session_requests_next_route_at_idx on public.session_requests (next_route_at)
  where next_route_at is not null and status in ('pending', 'unattended');  -- cron_dispatch touches due rows only

-- Offers that expire unanswered.
create index session_offers_open_expiry_idx on public.session_offers (expires_at)
  where status = 'offered' and expires_at is not null;

-- ---------------------------------------------------------------------------------------------
-- RLS: during a preferred mechanic's window, the request is visible to that mechanic only.
-- ---------------------------------------------------------------------------------------------
drop policy select_own_open_or_admin on public.session_requests;
create policy select_own_open_or_admin on public.session_requests for select to authenticated
  using (customer_id = (select auth.uid()) or mechanic_id = (select auth.uid())
         or (status in ('pending', 'unattended') and (select private.is_approved_mechanic())
             and (preferred_mechanic_id = (select auth.uid()) or broadcast_at <= (select now()))) -- window
         or (select private.is_admin()));

-- Mechanics currently holding work (busy): presence is public information, the work is not.
create function private.busy_mechanic_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$ select c.mechanic_id from public.mechanic_commitments c where c.status = 'in_progress' $$;
revoke execute on function private.busy_mechanic_ids() from public;
grant execute on function private.busy_mechanic_ids() to anon, authenticated, service_role;

-- The presence view is public (anon reads it next to the directory): it reads the online window.
grant execute on function private.setting(text), private.setting_interval(text) to anon;
