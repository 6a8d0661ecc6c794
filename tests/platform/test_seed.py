"""supabase/seed.sql applies on a migrated database and gives a usable demo."""

import psycopg

from shared.config import project_dir
from shared.dev.migrate import run_sql_file


def test_seed_applies_twice_and_makes_a_demo(fresh_url):
    seed = project_dir() / "supabase" / "seed.sql"
    run_sql_file(fresh_url, seed)
    run_sql_file(fresh_url, seed)  # idempotent
    with psycopg.connect(fresh_url) as conn:
        statuses = dict(conn.execute("select display_name, status::text from public.mechanics").fetchall())
        assert statuses == {"Morgan Reyes": "approved", "Wren Okafor": "approved", "Pat Pending": "pending",
                            "Sam Ito": "approved"}
        assert conn.execute("select count(*) from private.admins").fetchone()[0] == 1
        types = dict(conn.execute("select display_name, mechanic_type::text from public.mechanics").fetchall())
        assert types["Wren Okafor"] == "workshop_affiliated" and types["Morgan Reyes"] == "virtual_only"
        assert types["Sam Ito"] == "workshop_affiliated"
        # a verified workshop with an owner, a dispatcher and two mechanics, hours and capacity
        shop = "00000000-0000-4000-8000-0000000000a1"
        assert conn.execute("select status from public.organizations where id = %s", (shop,)).fetchone()[0] == "verified"
        roles = sorted(r[0] for r in conn.execute(
            "select role::text from public.organization_members where organization_id = %s", (shop,)).fetchall())
        assert roles == ["dispatcher", "mechanic", "mechanic", "owner"]
        hours = conn.execute("select count(*), min(capacity) from public.workshop_hours where organization_id = %s",
                             (shop,)).fetchone()
        assert hours == (6, 3)
