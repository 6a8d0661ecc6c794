"""`autodoctor db lint`: catalog checks mirroring Supabase's database linter (splinter).

Each check is one SQL query returning (object, detail) rows; any row is a finding.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

import psycopg

from shared.config import project_dir

# Schemas that belong to the platform (or to PostgreSQL): never "ours".
PLATFORM_OWNERS = ("supabase_auth_admin", "supabase_storage_admin", "supabase_realtime_admin")


@dataclass(frozen=True)
class Finding:
    lint: str
    obj: str
    detail: str

    def __str__(self) -> str:
        return f"{self.lint}: {self.obj} — {self.detail}"


# A scalar subquery `( SELECT <expression> )` without a FROM of its own, as pg_get_expr prints it
# (keywords upper case), with parentheses nested up to four levels inside. PostgreSQL evaluates it
# once per statement (an initPlan) as long as it does not reference the row; auth_rls_initplan
# removes these before looking for calls, so `(select auth.jwt() ->> 'role')` passes and a bare
# `auth.uid()` anywhere else, including inside a subquery with a FROM, is a finding.
_NESTED = r"\([^()]*\)"
for _ in range(3):
    _NESTED = r"\((?:[^()]|" + _NESTED + r")*\)"
INITPLAN_WRAPPED = r"\(\s*SELECT\s(?:[^()F]|F(?!ROM\M)|" + _NESTED + r")*\)"

# A function as `schema.name(argtypes)`, schema-qualified whatever the session's search_path.
_FUNCTION = """(n.nspname || '.' || p.proname || '(' || coalesce((
          select string_agg(format_type(a.t, null), ',' order by a.i)
          from unnest(p.proargtypes::oid[]) with ordinality as a(t, i)), '') || ')')"""

CHECKS: dict[str, str] = {
    # a public table without RLS
    "rls_disabled_in_public": """
        select format('%I.%I', n.nspname, c.relname), 'RLS is not enabled'
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity
    """,
    # a policy on a table with RLS off
    "policy_exists_rls_disabled": """
        select format('%I.%I', n.nspname, c.relname), format('policy %I exists but RLS is off', p.polname)
        from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
        where not c.relrowsecurity
    """,
    # a public table with RLS on and no policy at all
    "rls_enabled_no_policy": """
        select format('%I.%I', n.nspname, c.relname), 'RLS is enabled but no policy exists'
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relrowsecurity
          and not exists (select 1 from pg_policy p where p.polrelid = c.oid)
    """,
    # a security definer function without a fixed search_path
    "function_search_path_mutable": """
        select """ + _FUNCTION + """, 'no fixed search_path (set search_path = '''')'
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname not in ('pg_catalog', 'information_schema', 'auth', 'storage', 'realtime',
                                'extensions', 'platform_shim')
          and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
          and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) cfg
                          where cfg like 'search_path=%')
          and (p.prosecdef or n.nspname in ('public', 'private'))
    """,
    # a view in public without security_invoker
    "security_definer_view": """
        select format('%I.%I', n.nspname, c.relname), 'view without security_invoker = true'
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind = 'v'
          and not exists (select 1 from unnest(c.reloptions) o
                          where lower(o) ~ '^security_invoker=(true|on|yes|1)$')
    """,
    # materialized views are not guarded by RLS
    "materialized_view_in_api": """
        select format('%I.%I', n.nspname, c.relname), 'materialized view readable through the API'
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind = 'm'
          and (has_table_privilege('anon', c.oid, 'select')
               or has_table_privilege('authenticated', c.oid, 'select'))
    """,
    # a security definer function in public executable by anon (unless allow-listed)
    "anon_security_definer_function_executable": """
        select """ + _FUNCTION + """, 'security definer function executable by anon'
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'public' and p.prosecdef
          and has_function_privilege('anon', p.oid, 'execute')
          and not (p.proname = any(%(anon_allow)s::text[]))
    """,
    # a foreign key without a covering index
    "unindexed_foreign_keys": """
        select format('%I.%I', n.nspname, c.relname),
               format('foreign key %I has no covering index', k.conname)
        from pg_constraint k join pg_class c on c.oid = k.conrelid
        join pg_namespace n on n.oid = c.relnamespace
        where k.contype = 'f' and n.nspname in ('public', 'private')
          and not exists (
            select 1 from pg_index i
            where i.indrelid = k.conrelid
              and (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey
              and (i.indkey::int2[])[0:cardinality(k.conkey) - 1] <@ k.conkey)
    """,
    # a policy calling auth.*(), current_setting() or realtime.topic() outside a scalar (select ...)
    "auth_rls_initplan": r"""
        select format('%%I.%%I', n.nspname, c.relname),
               format('policy %%I calls auth.*(), current_setting() or realtime.topic() per row; '
                      'wrap it in (select ...)', p.polname)
        from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
        cross join lateral (
          select regexp_replace(
                   coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '
                   || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''),
                   %(initplan_wrapped)s, '', 'g') as rest) e
        where e.rest ~* '(auth\.(uid|role|email|jwt)|current_setting|realtime\.topic)\s*\('
    """,
    # a policy reading user_metadata (user-editable)
    "rls_references_user_metadata": """
        select format('%I.%I', n.nspname, c.relname), format('policy %I reads user_metadata', p.polname)
        from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
        where coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '
              || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
              ~* 'user_metadata'
    """,
    # a table without a primary key
    "no_primary_key": """
        select format('%I.%I', n.nspname, c.relname), 'no primary key'
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('public', 'private') and c.relkind in ('r', 'p') and not c.relispartition
          and not exists (select 1 from pg_constraint k where k.conrelid = c.oid and k.contype = 'p')
    """,
    # a write policy for anon/authenticated that is always true
    "rls_policy_always_true": """
        select format('%I.%I', n.nspname, c.relname), format('write policy %I allows everything', p.polname)
        from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
        where p.polcmd in ('a', 'w', 'd', '*')
          and (p.polroles && array['anon'::regrole::oid, 'authenticated'::regrole::oid] or p.polroles = '{0}')
          and (coalesce(pg_get_expr(p.polqual, p.polrelid), 'true') = 'true'
               and coalesce(pg_get_expr(p.polwithcheck, p.polrelid), 'true') = 'true')
    """,
    # more than one permissive policy for the same role and command
    "multiple_permissive_policies": """
        select format('%I.%I', n.nspname, c.relname),
               format('%s permissive policies for %s on %s: %s', count(*), r.rolname, cmd.cmd,
                      string_agg(p.polname, ', ' order by p.polname))
        from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
        cross join lateral unnest(case when p.polroles = '{0}' then array['anon'::regrole::oid,
          'authenticated'::regrole::oid] else p.polroles end) as rid(oid)
        join pg_roles r on r.oid = rid.oid
        cross join lateral unnest(case p.polcmd when '*' then array['r', 'a', 'w', 'd']
                                  else array[p.polcmd::text] end) as cmd(cmd)
        where p.polpermissive and n.nspname = 'public' and r.rolname in ('anon', 'authenticated')
        group by n.nspname, c.relname, r.rolname, cmd.cmd
        having count(*) > 1
    """,
    # duplicate indexes
    "duplicate_index": """
        select format('%I.%I', n.nspname, c.relname),
               'duplicate indexes: ' || string_agg(i.indexrelid::regclass::text, ', ')
        from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('public', 'private')
        group by n.nspname, c.relname, i.indrelid, i.indkey::text, i.indclass::text,
                 coalesce(pg_get_expr(i.indexprs, i.indrelid), ''),
                 coalesce(pg_get_expr(i.indpred, i.indrelid), '')
        having count(*) > 1
    """,
    # auth.users reachable through a public view
    "auth_users_exposed": """
        select distinct format('%I.%I', n.nspname, c.relname), 'view exposes auth.users to the API'
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        join pg_depend d on d.objid in (select r.oid from pg_rewrite r where r.ev_class = c.oid)
        where n.nspname = 'public' and c.relkind in ('v', 'm') and d.refobjid = 'auth.users'::regclass
          and (has_table_privilege('anon', c.oid, 'select')
               or has_table_privilege('authenticated', c.oid, 'select'))
    """,
    # an extension installed in public
    "extension_in_public": """
        select e.extname, 'extension installed in schema public'
        from pg_extension e join pg_namespace n on n.oid = e.extnamespace
        where n.nspname = 'public'
    """,
    # our objects in platform schemas (only triggers, policies and foreign keys are allowed there)
    "objects_in_platform_schemas": """
        select n.nspname || '.' || c.relname, 'relation owned by ' || pg_get_userbyid(c.relowner)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('auth', 'storage', 'realtime')
          and pg_get_userbyid(c.relowner) <> all(%(platform_owners)s::text[])
          -- an index belongs to its table's owner; a table's own sequences are reported with it
          and c.relkind not in ('i', 'I')
          and not (c.relkind = 'S' and exists (
                   select 1 from pg_depend d
                   where d.classid = 'pg_class'::regclass and d.objid = c.oid
                     and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
        union all
        select """ + _FUNCTION + """, 'function owned by ' || pg_get_userbyid(p.proowner)
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname in ('auth', 'storage', 'realtime')
          and pg_get_userbyid(p.proowner) <> all(%(platform_owners)s::text[])
        union all
        select n.nspname || '.' || t.typname, 'type owned by ' || pg_get_userbyid(t.typowner)
        from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where n.nspname in ('auth', 'storage', 'realtime') and t.typtype in ('e', 'd', 'c')
          and t.typrelid = 0
          and pg_get_userbyid(t.typowner) <> all(%(platform_owners)s::text[])
    """,
    # a private schema object that the API roles can reach through PostgREST is not a lint here:
    # `private` is never in PostgREST's exposed schemas.
}


def anon_allow_list() -> list[str]:
    path = project_dir() / "pyproject.toml"
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    section = data.get("tool", {}).get("autodoctor", {}).get("lint", {})
    return list(section.get("anon_security_definer_allow", []))


def run_lint(conn: psycopg.Connection) -> list[Finding]:
    params = {
        "anon_allow": anon_allow_list(),
        "platform_owners": list(PLATFORM_OWNERS),
        "initplan_wrapped": INITPLAN_WRAPPED,
    }
    findings: list[Finding] = []
    for name, query in CHECKS.items():
        uses_params = "%(" in query
        rows = conn.execute(query, params if uses_params else None).fetchall()
        findings.extend(Finding(name, obj, detail) for obj, detail in rows)
    return findings


# What the source defines, by identity: functions (with argument types), triggers, views and
# policies in public and private. Compared between the linted database and a scratch database built
# from the repository, an object only the linted database has is stale: a removed RPC that stays
# executable is a security finding.
_DEFINED = f"""
select 'function', {_FUNCTION}
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname in ('public', 'private')
  and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
union all
select 'trigger', format('%I on %I.%I', t.tgname, n.nspname, c.relname)
from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
join pg_proc f on f.oid = t.tgfoid join pg_namespace fn on fn.oid = f.pronamespace
where not t.tgisinternal and (n.nspname in ('public', 'private') or fn.nspname in ('public', 'private'))
union all
select 'view', format('%I.%I', n.nspname, c.relname)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('v', 'm') and n.nspname in ('public', 'private')
union all
select 'policy', format('%I on %I.%I', p.polname, n.nspname, c.relname)
from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
where n.nspname in ('public', 'private')
"""


def defined_objects(conn: psycopg.Connection) -> set[tuple[str, str]]:
    return {(kind, identity) for kind, identity in conn.execute(_DEFINED).fetchall()}


def stale_objects(url: str) -> list[Finding]:
    """`stale_object` findings: objects of the database at `url` that the repository (migrations and
    functions_sql) no longer defines, found against a scratch database migrated from it."""
    from shared.dev.migrate import connect, migrate, scratch_database

    with connect(url) as conn:
        present = defined_objects(conn)
    with scratch_database(url, "autodoctor_lint") as scratch:
        migrate(scratch, log=lambda _m: None)
        with connect(scratch) as conn:
            expected = defined_objects(conn)
    return [Finding("stale_object", identity, f"{kind} that no migration or functions_sql file defines any more")
            for kind, identity in sorted(present - expected)]
