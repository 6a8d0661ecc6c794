-- A workshop's details: what the directory shows (legal name, address, coordinates, description,
-- services, brands, photo) and its phone, which only its members read.
alter table public.organizations
  add column legal_name text constraint organizations_legal_name_length check (char_length(legal_name) <= 200),
  add column address_line text constraint organizations_address_line_length check (char_length(address_line) <= 300),
  add column latitude double precision constraint organizations_latitude_range check (latitude between -90 and 90),
  add column longitude double precision constraint organizations_longitude_range check (longitude between -180 and 180),
  add column phone text constraint organizations_phone_length check (char_length(phone) <= 40),
  add column description text constraint organizations_description_length check (char_length(description) <= 4000),
  add column services text[] not null default '{}'
    constraint organizations_services_count check (cardinality(services) <= 50),
  add column brands text[] not null default '{}'
    constraint organizations_brands_count check (cardinality(brands) <= 50),
  add column photo_url text constraint organizations_photo_url_format check (photo_url ~ '^https://' and char_length(photo_url) <= 2000),
  add constraint organizations_coordinates_together check ((latitude is null) = (longitude is null));
