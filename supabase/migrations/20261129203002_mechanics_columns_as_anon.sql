-- Columns of public.mechanics: authenticated selects exactly the columns anon selects, whatever
-- migrations granted anon before this one (the directory columns and the reputation aggregates).
-- A later migration that grants anon a column of public.mechanics grants it to authenticated too
-- (tests/trust/test_columns.py checks that the two lists stay equal; docs/access.md lists them).
do $$
declare
  v_columns text;
begin
  select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into v_columns
  from pg_attribute a
  where a.attrelid = 'public.mechanics'::regclass and a.attnum > 0 and not a.attisdropped
    and has_column_privilege('anon', a.attrelid, a.attnum, 'SELECT');
  execute 'revoke select on public.mechanics from authenticated';
  execute format('grant select (%s) on public.mechanics to authenticated', v_columns);
end
$$;
