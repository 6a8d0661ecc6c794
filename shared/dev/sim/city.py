"""The reference city (its peak hour and its day) and the seeding of a synthetic city.

`REFERENCE` is the busiest hour of a mid-size launch city (docs/simulation.md, "The reference city");
`--rate R` multiplies its rates. `DAY_PROFILE` is the share of that peak in each hour of the day.
`seed()` bulk-inserts the run's mechanics and customers with set-based SQL as the schema owner,
the way Supabase Auth creates users (rows in auth.users; the signup trigger makes their profiles
and mechanic rows), deterministic from the run's seed.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

import psycopg

from shared.dev.sim.spec import RunSpec

EMAIL_DOMAIN = "sim.autodoctor.test"


@dataclass(frozen=True)
class Reference:
    """The reference city's peak hour. Rates are per hour of the whole city at `--rate 1`."""

    name: str = "Riverton"
    country: str = "CA"
    timezone: str = "America/Toronto"
    metro_population: int = 1_000_000
    # populations the rates were sized for (a run's --mechanics/--customers should grow with --rate)
    mechanics: int = 400
    customers: int = 20_000
    online_share_at_peak: float = 0.30       # of approved mechanics, online at the peak hour
    # on-demand requests per hour at the peak, by plan (free: the one free session of an account)
    requests_per_hour: dict[str, float] = field(default_factory=lambda: {
        "free": 60.0, "micro": 48.0, "chat10": 36.0, "video15": 24.0, "diagnostic": 12.0})
    bookings_per_hour: float = 30.0          # scheduled sessions booked (hold → book / checkout)
    reschedule_per_booking: float = 0.10
    cancel_per_booking: float = 0.08
    cancel_before_match: float = 0.05        # customers who give up before an offer is accepted
    checkout_abandon: float = 0.15           # paid checkouts never paid
    chat_messages_per_session: float = 8.0   # both sides together
    review_per_delivered: float = 0.45
    follow_up_per_delivered: float = 0.05
    report_per_delivered: float = 0.01
    release_per_accept: float = 0.02         # a mechanic gives back an accepted request
    decline_per_offer: float = 0.30          # a mechanic passes on a targeted offer
    # idle online mechanics, city-wide, who try to take a request from the open feed (a few look at
    # the feed at any moment, however many are online; a share of all of them would make a 10x city's
    # every request a stampede of a hundred accepts)
    open_feed_takers: float = 3.0
    directory_reads_per_request: float = 2.0  # available_mechanics before filing
    availability_reads_per_booking: float = 3.0  # mechanics_free_at + available_slots before holding

    @property
    def requests_total(self) -> float:
        return sum(self.requests_per_hour.values())


REFERENCE = Reference()

# Share of the peak hour's traffic in each hour of the day (local time, 0 = midnight): quiet nights,
# a morning rise as people reach their cars, a lunch bump and the after-work peak at 17:00-18:00.
DAY_PROFILE: tuple[float, ...] = (
    0.06, 0.04, 0.03, 0.03, 0.04, 0.08,   # 00-05
    0.18, 0.38, 0.55, 0.62, 0.66, 0.72,   # 06-11
    0.78, 0.74, 0.70, 0.76, 0.88, 1.00,   # 12-17
    0.97, 0.84, 0.66, 0.46, 0.28, 0.13,   # 18-23
)
assert len(DAY_PROFILE) == 24 and max(DAY_PROFILE) == 1.0

START_CLOCK_S = 16 * 3600.0
"""Simulated time 0 is 16:00 local, the hour before the peak."""

# Forward sortation areas of the city's districts (the first three characters of a postal code,
# which the ranking compares: `same_postal_area`).
DISTRICTS = ("K1A", "K1B", "K1C", "K1E", "K1G", "K1H", "K1J", "K1K", "K1L", "K1M", "K1N", "K1P",
             "K1R", "K1S", "K1T", "K1V", "K1W", "K1X", "K1Y", "K1Z", "K2A", "K2B", "K2C", "K2E")
MAKES = ("Honda", "Toyota", "Ford", "Chevrolet", "Hyundai", "Nissan", "Kia", "Mazda", "Subaru", "Volkswagen")
SPECIALTIES = (
    ("brakes", "suspension"), ("electrical", "battery"), ("diagnostics", "check engine"),
    ("transmission", "clutch"), ("engine", "cooling"), ("air conditioning", "heating"), ("tires", "alignment"),
)
BRAND_SPECIALIST_SHARE = 0.10


@dataclass
class City:
    mechanic_ids: list[str]
    customer_ids: list[str]
    admin_id: str


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hour_of_day(sim_s: float) -> float:
    """The city's local hour (0-24, fractional) at `sim_s` simulated seconds into the run."""
    return ((START_CLOCK_S + sim_s) / 3600.0) % 24.0


def day_share(sim_s: float) -> float:
    """DAY_PROFILE at `sim_s`, interpolated between the hours."""
    h = hour_of_day(sim_s)
    i = int(h) % 24
    frac = h - int(h)
    return DAY_PROFILE[i] * (1 - frac) + DAY_PROFILE[(i + 1) % 24] * frac


# The rows Supabase Auth's signup makes (auth.users, then the signup trigger's profiles and mechanics),
# made set-based: the trigger would run once per row (most of a big seed's time). The rows are the
# same; mechanics are inserted with their triggers on, so derived columns (keyword bits, brand keys,
# the rating score) are computed by the schema itself.
_USERS = """
insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
                        email_confirmed_at)
select u.id, 'authenticated', 'authenticated', u.email, '{"provider": "email", "providers": ["email"]}'::jsonb,
       jsonb_build_object('full_name', u.name, 'timezone', %(tz)s::text)
         || case when u.mechanic then '{"account_type": "mechanic"}'::jsonb else '{}'::jsonb end,
       now(), now(), now()
from unnest(%(ids)s::uuid[], %(emails)s::text[], %(names)s::text[], %(mech)s::boolean[]) as u(id, email, name, mechanic)
"""

_PROFILES = """
insert into public.profiles (id, full_name, timezone, city, postal_code, country)
select x.id, x.name, %(tz)s, %(city)s, x.postal, %(country)s
from unnest(%(ids)s::uuid[], %(names)s::text[], %(postals)s::text[]) as x(id, name, postal)
"""

_MECHANICS = """
insert into public.mechanics (id, display_name, timezone, status, approved_at, years_experience, city, postal_code,
                              country, specialties, service_keywords, brand_specializations, is_brand_specialist)
select t.id, t.name, %(tz)s, 'approved', now(), t.years, %(city)s, t.postal, %(country)s,
       string_to_array(t.specialties_csv, ','), string_to_array(t.specialties_csv, ','),
       coalesce(string_to_array(nullif(t.brands_csv, ''), ','), '{}'), t.brands_csv <> ''
from unnest(%(ids)s::uuid[], %(names)s::text[], %(years)s::int[], %(postals)s::text[], %(specialties)s::text[],
            %(brands)s::text[]) as t(id, name, years, postal, specialties_csv, brands_csv)
"""

# Weekday evenings and Saturdays for everyone; a third also weekday daytime (the full-timers).
_AVAILABILITY = """
insert into public.mechanic_weekly_availability (mechanic_id, day_of_week, start_time, end_time)
select x.id, d, case when x.full_time then time '09:00' else time '17:00' end, time '21:00'
from unnest(%(ids)s::uuid[], %(full)s::boolean[]) as x(id, full_time) cross join generate_series(1, 5) d
union all
select x.id, 6, time '10:00', time '16:00' from unnest(%(ids)s::uuid[]) as x(id)
"""

_RULES = """
insert into public.booking_rules (mechanic_id, instant_booking)
select id, true from unnest(%(ids)s::uuid[]) as x(id)
"""

_VEHICLES = """
insert into public.vehicles (id, owner_id, make, model, year, is_primary)
select x.vid, x.id, x.make, 'Model ' || x.year::text, x.year, true
from unnest(%(vids)s::uuid[], %(ids)s::uuid[], %(makes)s::text[], %(years)s::int[]) as x(vid, id, make, year)
"""

_WAIVERS = """
insert into public.waiver_acceptances (user_id, waiver_version, adult_confirmed, user_agent)
select id, (select private.setting_text('waiver.current_version')), true, 'autodoctor-sim'
from unnest(%(ids)s::uuid[]) as x(id)
"""


def seed(database_url: str, run: RunSpec) -> City:
    """Insert `run.mechanics` approved mechanics and `run.customers` customers (with a vehicle and the
    current terms accepted) and one admin, in one transaction; deterministic from `run.seed`."""
    rng = random.Random(f"city:{run.seed}")  # noqa: S311 - reproducible data, not secrets
    admin_id = _uuid(rng)
    mechanic_ids = [_uuid(rng) for _ in range(run.mechanics)]
    customer_ids = [_uuid(rng) for _ in range(run.customers)]
    tag = f"{run.seed:x}"
    ids = mechanic_ids + customer_ids
    emails = [f"m{i}.{tag}@{EMAIL_DOMAIN}" for i in range(run.mechanics)] + \
             [f"c{i}.{tag}@{EMAIL_DOMAIN}" for i in range(run.customers)]
    names = [f"Mechanic {i}" for i in range(run.mechanics)] + [f"Customer {i}" for i in range(run.customers)]
    mech = [True] * run.mechanics + [False] * run.customers
    years = [rng.choice((1, 2, 3, 5, 7, 9, 12, 15, 20)) for _ in mechanic_ids]
    m_postals = [f"{rng.choice(DISTRICTS)} {rng.randint(1, 9)}A{rng.randint(1, 9)}" for _ in mechanic_ids]
    specialties = [",".join(rng.choice(SPECIALTIES)) for _ in mechanic_ids]
    brands = [rng.choice(MAKES) if rng.random() < BRAND_SPECIALIST_SHARE else "" for _ in mechanic_ids]
    full_time = [rng.random() < 1 / 3 for _ in mechanic_ids]
    c_postals = [f"{rng.choice(DISTRICTS)} {rng.randint(1, 9)}B{rng.randint(1, 9)}" for _ in customer_ids]
    vehicle_ids = [_uuid(rng) for _ in customer_ids]
    makes = [rng.choice(MAKES) for _ in customer_ids]
    vyears = [rng.randint(2008, 2025) for _ in customer_ids]
    ref = REFERENCE
    with psycopg.connect(database_url, prepare_threshold=None) as conn, conn.transaction():
        # the admin through the signup trigger, as Auth makes it
        conn.execute(
            "insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, "
            "updated_at, email_confirmed_at) values (%s, 'authenticated', 'authenticated', %s, "
            "'{\"provider\": \"email\", \"providers\": [\"email\"], \"role\": \"admin\"}', "
            "'{\"full_name\": \"Sim Admin\"}', now(), now(), now())",
            (admin_id, f"admin.{tag}@{EMAIL_DOMAIN}"))
        # everyone else set-based: triggers (and the foreign-key checks, which hold by construction)
        # are off for these inserts only, as a bulk load does it
        conn.execute("set local session_replication_role = replica")
        conn.execute(_USERS, {"ids": ids, "emails": emails, "names": names, "mech": mech, "tz": ref.timezone})
        conn.execute(_PROFILES, {"ids": ids, "names": names, "postals": m_postals + c_postals, "city": ref.name,
                                 "country": ref.country, "tz": ref.timezone})
        conn.execute(_VEHICLES, {"vids": vehicle_ids, "ids": customer_ids, "makes": makes, "years": vyears})
        conn.execute(_WAIVERS, {"ids": customer_ids})
        conn.execute("set local session_replication_role = origin")
        conn.execute(_MECHANICS, {"ids": mechanic_ids, "names": names[:run.mechanics], "years": years,
                                  "postals": m_postals, "specialties": specialties, "brands": brands,
                                  "city": ref.name, "country": ref.country, "tz": ref.timezone})
        conn.execute(_AVAILABILITY, {"ids": mechanic_ids, "full": full_time})
        conn.execute(_RULES, {"ids": mechanic_ids})
    return City(mechanic_ids=mechanic_ids, customer_ids=customer_ids, admin_id=admin_id)
