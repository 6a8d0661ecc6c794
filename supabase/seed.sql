-- Demo data for local runs (`autodoctor db reset`). Users are created the way Supabase Auth
-- creates them (rows in auth.users); the signup trigger makes their profiles and mechanic rows.
-- Fixed ids so that `autodoctor token --user <id>` can act as each of them.
--
--   admin     00000000-0000-4000-8000-000000000001  admin@autodoctor.test
--   customer  00000000-0000-4000-8000-000000000002  casey@autodoctor.test
--   mechanic  00000000-0000-4000-8000-000000000003  morgan@autodoctor.test (approved, virtual only)
--   mechanic  00000000-0000-4000-8000-000000000004  wren@autodoctor.test   (approved, Bay Motors)
--   mechanic  00000000-0000-4000-8000-000000000005  pat@autodoctor.test    (pending application)
--   workshop owner 00000000-0000-4000-8000-000000000006 bay@autodoctor.test
--   dispatcher 00000000-0000-4000-8000-000000000007 dani@autodoctor.test  (Bay Motors)
--   mechanic  00000000-0000-4000-8000-000000000008  sam@autodoctor.test    (approved, Bay Motors)
--
-- Bay Motors (00000000-0000-4000-8000-0000000000a1) is a verified workshop: owner, dispatcher,
-- two mechanics (Wren and Sam), hours Monday to Saturday and a capacity of 3.

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
                        email_confirmed_at)
values
  ('00000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'admin@autodoctor.test',
   '{"provider": "email", "providers": ["email"], "role": "admin"}', '{"full_name": "Ada Admin"}', now(), now(), now()),
  ('00000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'casey@autodoctor.test',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Casey Customer", "timezone": "America/New_York"}',
   now(), now(), now()),
  ('00000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', 'morgan@autodoctor.test',
   '{"provider": "email", "providers": ["email"]}',
   '{"full_name": "Morgan Reyes", "account_type": "mechanic", "timezone": "America/Toronto"}', now(), now(), now()),
  ('00000000-0000-4000-8000-000000000004', 'authenticated', 'authenticated', 'wren@autodoctor.test',
   '{"provider": "email", "providers": ["email"]}',
   '{"full_name": "Wren Okafor", "account_type": "mechanic", "timezone": "America/Toronto"}', now(), now(), now()),
  ('00000000-0000-4000-8000-000000000005', 'authenticated', 'authenticated', 'pat@autodoctor.test',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Pat Pending", "account_type": "mechanic"}',
   now(), now(), now()),
  ('00000000-0000-4000-8000-000000000006', 'authenticated', 'authenticated', 'bay@autodoctor.test',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Bay Motors Owner"}', now(), now(), now()),
  ('00000000-0000-4000-8000-000000000007', 'authenticated', 'authenticated', 'dani@autodoctor.test',
   '{"provider": "email", "providers": ["email"]}', '{"full_name": "Dani Dispatcher", "timezone": "America/Toronto"}',
   now(), now(), now()),
  ('00000000-0000-4000-8000-000000000008', 'authenticated', 'authenticated', 'sam@autodoctor.test',
   '{"provider": "email", "providers": ["email"]}',
   '{"full_name": "Sam Ito", "account_type": "mechanic", "timezone": "America/Toronto"}', now(), now(), now())
on conflict (id) do nothing;

insert into public.organizations (id, name, timezone, city, postal_code, country, created_by, status, verified_at,
                                  legal_name, address_line, latitude, longitude, phone, description, services, brands)
values ('00000000-0000-4000-8000-0000000000a1', 'Bay Motors', 'America/Toronto', 'Toronto', 'M5V 2T6', 'CA',
        '00000000-0000-4000-8000-000000000006', 'verified', now(), 'Bay Motors Inc.', '401 Front St W',
        43.6426, -79.3871, '+1 416 555 0142', 'Brakes, electrical and diagnostics on Japanese imports.',
        '{brakes,diagnostics,electrical,battery,maintenance}', '{Honda,Toyota}')
on conflict (id) do nothing;
insert into public.organization_members (organization_id, user_id, role) values
  ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000006', 'owner'),
  ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000007', 'dispatcher'),
  ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000004', 'mechanic'),
  ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000008', 'mechanic')
on conflict do nothing;
-- Monday to Friday 08:00-18:00 with a lunch break, Saturday 09:00-14:00; 3 cars at once.
insert into public.workshop_hours (organization_id, day_of_week, is_open, open_time, close_time, break_start,
                                   break_end, capacity)
select '00000000-0000-4000-8000-0000000000a1', d, true, '08:00', '18:00', '12:00', '13:00', 3
from generate_series(1, 5) d
on conflict do nothing;
insert into public.workshop_hours (organization_id, day_of_week, is_open, open_time, close_time, capacity)
values ('00000000-0000-4000-8000-0000000000a1', 6, true, '09:00', '14:00', 3)
on conflict do nothing;

update public.mechanics set status = 'approved', approved_at = now(), years_experience = 12,
  specialties = '{brakes,suspension,diagnostics}', brand_specializations = '{Honda,Toyota}', is_brand_specialist = true,
  service_keywords = '{brakes,abs,suspension,check engine}', city = 'Toronto', postal_code = 'M4C 1B5', country = 'CA',
  bio = 'Twelve years on Japanese imports; brakes and drivability.'
where id = '00000000-0000-4000-8000-000000000003';
update public.mechanics set status = 'approved', approved_at = now(), years_experience = 6,
  specialties = '{electrical,battery}', service_keywords = '{electrical,battery,alternator}', city = 'Toronto',
  postal_code = 'M5V 3L9', country = 'CA', organization_id = '00000000-0000-4000-8000-0000000000a1',
  account_type = 'workshop_mechanic'
where id = '00000000-0000-4000-8000-000000000004';
update public.mechanics set status = 'approved', approved_at = now(), years_experience = 9,
  specialties = '{brakes,suspension}', service_keywords = '{brakes,suspension,alignment}', city = 'Toronto',
  postal_code = 'M5V 2T6', country = 'CA', organization_id = '00000000-0000-4000-8000-0000000000a1',
  account_type = 'workshop_mechanic'
where id = '00000000-0000-4000-8000-000000000008';

insert into public.vehicles (id, owner_id, make, model, year, color, mileage, is_primary)
values ('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-000000000002', 'Honda', 'Civic', 2018,
        'blue', 84000, true)
on conflict (id) do nothing;
insert into public.intakes (id, customer_id, vehicle_id, concern, contact_name, contact_email, vehicle_make,
                            vehicle_model, vehicle_year)
values ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-000000000002',
        '00000000-0000-4000-8000-0000000000b1', 'Grinding noise from the front brakes when stopping',
        'Casey Customer', 'casey@autodoctor.test', 'Honda', 'Civic', 2018)
on conflict (id) do nothing;
