-- Typed settings: every row of private.settings declares the type of its value (value_type), and
-- a trigger refuses a value that does not match it with invalid_input (AD001). Existing rows get
-- the type their value has. Descriptions state each rule plainly. docs/settings.md is generated
-- from this table by `autodoctor gen`.

-- true when a setting's JSON value is of type p_type:
--   integer     a whole JSON number                      number    any JSON number
--   boolean     true or false                            text      a JSON string
--   interval    a JSON string that casts to interval     object    a JSON object
--   text[]      a JSON array of strings                  interval[] a JSON array of interval strings
create function private.setting_value_matches(p_value jsonb, p_type text) returns boolean
language plpgsql
stable
set search_path = ''
as $$
declare
  v_element jsonb;
begin
  case p_type
    when 'integer' then
      return jsonb_typeof(p_value) = 'number'
        and (p_value #>> '{}')::numeric = trunc((p_value #>> '{}')::numeric);
    when 'number' then
      return jsonb_typeof(p_value) = 'number';
    when 'boolean' then
      return jsonb_typeof(p_value) = 'boolean';
    when 'text' then
      return jsonb_typeof(p_value) = 'string';
    when 'object' then
      return jsonb_typeof(p_value) = 'object';
    when 'interval' then
      if jsonb_typeof(p_value) <> 'string' then
        return false;
      end if;
      perform (p_value #>> '{}')::interval;
      return true;
    when 'text[]', 'interval[]' then
      if jsonb_typeof(p_value) <> 'array' then
        return false;
      end if;
      for v_element in select e from jsonb_array_elements(p_value) as a(e) loop
        if not private.setting_value_matches(v_element, left(p_type, -2)) then
          return false;
        end if;
      end loop;
      return true;
    else
      return false;
  end case;
exception when invalid_datetime_format or datetime_field_overflow or interval_field_overflow
  or invalid_text_representation or numeric_value_out_of_range then
  return false;
end
$$;
revoke execute on function private.setting_value_matches(jsonb, text) from public;
comment on function private.setting_value_matches(jsonb, text) is
  'Whether a setting value (jsonb) is of the given value_type of private.settings.';

alter table private.settings add column value_type text;

-- Backfill: the first type, most specific first, that each existing value matches.
update private.settings as s set value_type = (
  select t.name
  from unnest(array['integer', 'number', 'boolean', 'interval', 'text', 'interval[]', 'text[]', 'object'])
    with ordinality as t(name, rank)
  where private.setting_value_matches(s.value, t.name)
  order by t.rank
  limit 1
);

alter table private.settings
  alter column value_type set not null,
  add constraint settings_value_type_known check (
    value_type in ('integer', 'number', 'boolean', 'text', 'interval', 'object', 'text[]', 'interval[]')
  );
comment on column private.settings.value_type is
  'Type of value: integer, number, boolean, text, interval (a string such as "5 minutes"), object, '
  'text[] or interval[]; a value of another type is refused (invalid_input).';

create function private.settings_check_value() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.value_type is null then
    perform private.raise_error(
      'invalid_input',
      format('setting %s needs a value_type', new.key),
      'one of integer, number, boolean, text, interval, object, text[], interval[]'
    );
  end if;
  if not private.setting_value_matches(new.value, new.value_type) then
    perform private.raise_error(
      'invalid_input',
      format('setting %s must be of type %s', new.key, new.value_type),
      format('value %s', new.value::text)
    );
  end if;
  return new;
end
$$;
revoke execute on function private.settings_check_value() from public;

create trigger _100_check_value before insert or update on private.settings
  for each row execute function private.settings_check_value();

-- Descriptions: the rule itself, in plain words.
update private.settings as s set description = d.description
from (values
  ('requests.unattended_after',
   'a pending request nobody has accepted for this long becomes unattended'),
  ('requests.expire_after',
   'a pending or unattended request this old expires'),
  ('matching.preferred_window',
   'a request naming a preferred mechanic is offered to that mechanic alone for this long'),
  ('matching.weights',
   'ranking points per reason: online now or seen recently, keyword match, brand specialist, '
   'years of experience, same postal area or city, rating'),
  ('scheduling.hold_duration',
   'a slot hold expires this long after it was taken'),
  ('scheduling.min_notice',
   'default: a booked slot starts at least this long after the booking'),
  ('scheduling.max_advance',
   'default: a slot can be booked at most this far ahead'),
  ('scheduling.buffer',
   'default: free time kept between two sessions of a mechanic'),
  ('micro.extension_minutes',
   'a micro session may be extended once by this many minutes'),
  ('micro.daily_cap_minutes',
   'default: micro-session minutes a mechanic may take per local day'),
  ('pricing.specialist_surcharge_cents',
   'cents added to a plan''s price when it is booked with a brand specialist'),
  ('extensions.standard_price_cents',
   'price in cents of one paid extension'),
  ('nudges.support_alert_after',
   'a session still waiting to start this long after it was accepted alerts support')
) as d(key, description)
where s.key = d.key;
